"""Execution plans: the states of an op, their handlers, tags and order.

A state handler is an async callable ``handle(ctx, io, recorder)``: it reads and writes the
:class:`~mfm_store.engine.context.Context`, makes every external observation through ``io``
(so it is recorded as a fact, or served from the recorded facts on resume and replay), and may
emit domain events through ``recorder``. It fails its attempt by raising an ``MfmError`` (for
example :class:`~mfm_store.engine.errors.StateFailure`); its return value is ignored.

States run one after another in topological order of ``edges`` (Kahn's algorithm, ties broken
by the order of ``states``; with no edges, the order of ``states``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeAlias

import attrs

from ..canonical import string_contains_secrets
from ..ids import OpId, StateId
from ..live_io import IoProvider
from .context import Context
from .errors import CODE_INVALID_PLAN, CODE_SECRETS_DETECTED, InvalidPlanError
from .manifest import tuple_of_str
from .recorder import EventRecorder

__all__ = ["ExecutionPlan", "PlanState", "StateHandler"]

StateHandler: TypeAlias = Callable[[Context, IoProvider, EventRecorder], Awaitable[object]]


@attrs.frozen
class PlanState:
    """One state: its id (``machine.step.state``), its handler and its tags.

    A state carrying a tag listed in the run's ``skip_tags`` is completed without calling its
    handler (its snapshot is its base snapshot).
    """

    state_id: StateId = attrs.field(converter=StateId)
    handler: StateHandler = attrs.field(eq=False)
    tags: tuple[str, ...] = attrs.field(default=(), converter=tuple_of_str)


def _edges(value: Iterable[tuple[str, str]]) -> tuple[tuple[StateId, StateId], ...]:
    return tuple((StateId(a), StateId(b)) for a, b in value)


def _states(value: Iterable[PlanState]) -> tuple[PlanState, ...]:
    return tuple(value)


@attrs.frozen
class ExecutionPlan:
    """An op's states and the ``(before, after)`` edges between them."""

    op_id: OpId = attrs.field(converter=OpId)
    states: tuple[PlanState, ...] = attrs.field(converter=_states)
    edges: tuple[tuple[StateId, StateId], ...] = attrs.field(default=(), converter=_edges)

    def state(self, state_id: str) -> PlanState | None:
        for s in self.states:
            if s.state_id == state_id:
                return s
        return None

    def ordered(self) -> list[PlanState]:
        """States in execution order; raises ``InvalidPlanError`` (``invalid_plan``) if the plan
        is empty, has duplicate ids, an edge naming an unknown state, or a cycle, and
        (``secrets_detected``) if a state id would write a secret into the event stream."""
        if not self.states:
            raise InvalidPlanError("execution plan failed validation: no states",
                                   code=CODE_INVALID_PLAN)
        by_id: dict[str, PlanState] = {}
        for s in self.states:
            if s.state_id in by_id:
                raise InvalidPlanError(
                    f"execution plan failed validation: duplicate state {s.state_id}",
                    code=CODE_INVALID_PLAN)
            if string_contains_secrets(s.state_id):
                raise InvalidPlanError("state id contained secrets (policy forbids persisting "
                                       "secrets)", code=CODE_SECRETS_DETECTED)
            by_id[s.state_id] = s
        successors: dict[str, list[str]] = {sid: [] for sid in by_id}
        indegree = dict.fromkeys(by_id, 0)
        for a, b in self.edges:
            if a not in by_id or b not in by_id:
                raise InvalidPlanError(
                    f"execution plan failed validation: edge {a} -> {b} names an unknown state",
                    code=CODE_INVALID_PLAN)
            successors[a].append(b)
            indegree[b] += 1
        queue = deque(sid for sid in by_id if indegree[sid] == 0)
        order: list[PlanState] = []
        while queue:
            sid = queue.popleft()
            order.append(by_id[sid])
            for nxt in successors[sid]:
                indegree[nxt] -= 1
                if indegree[nxt] == 0:
                    queue.append(nxt)
        if len(order) != len(by_id):
            raise InvalidPlanError("execution plan failed validation: cycle",
                                   code=CODE_INVALID_PLAN)
        return order
