"""The engine (SPEC §7): start, resume and replay sequential state plans on any store."""

from .context import Context
from .errors import ContextError, InvalidPlanError, RunError, StateFailure
from .fork import ForkOrigin, ForkResult, fork, fork_origin
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
from .overlay import OverlayStore
from .plan import ExecutionPlan, PlanState, StateHandler
from .recorder import EventRecorder
from .replay import ReplayOutcome, ReplayReport, replay, replay_store
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
    "ForkOrigin",
    "ForkResult",
    "InvalidPlanError",
    "IoMode",
    "OverlayStore",
    "PlanState",
    "ReplayOutcome",
    "ReplayReport",
    "RetryPolicy",
    "RunConfig",
    "RunError",
    "RunManifest",
    "RunResult",
    "StateFailure",
    "StateHandler",
    "fork",
    "fork_origin",
    "replay",
    "replay_store",
    "resume",
    "start",
]
