"""The engine (SPEC §7): start, resume and replay sequential state plans on any store."""

from .context import Context
from .errors import ContextError, InvalidPlanError, RunError, StateFailure
from .manifest import (
    BuildProvenance,
    ContextCheckpointing,
    Duration,
    EventProfile,
    ExecutionMode,
    ExponentialBackoff,
    FixedBackoff,
    IoMode,
    RetryPolicy,
    RunConfig,
    RunManifest,
)
from .plan import ExecutionPlan, PlanState, StateHandler
from .recorder import EventRecorder
from .runner import RunResult, resume, start

__all__ = [
    "BuildProvenance",
    "Context",
    "ContextCheckpointing",
    "ContextError",
    "Duration",
    "EventProfile",
    "EventRecorder",
    "ExecutionMode",
    "ExecutionPlan",
    "ExponentialBackoff",
    "FixedBackoff",
    "InvalidPlanError",
    "IoMode",
    "PlanState",
    "RetryPolicy",
    "RunConfig",
    "RunError",
    "RunManifest",
    "RunResult",
    "StateFailure",
    "StateHandler",
    "resume",
    "start",
]
