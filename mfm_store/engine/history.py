"""Reading a run's recorded history back: what resume and replay need to know.

The kernel events are checked for a well-formed attempt structure (every ``StateCompleted`` /
``StateFailed`` closes the attempt its ``StateEntered`` opened). One exception is allowed: a
recovery re-enters an orphan attempt (``StateEntered`` for the same state with a higher attempt
number while the orphan is still open), which closes the orphan as abandoned.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from ..events import (
    EventEnvelope,
    RunCompleted,
    RunStarted,
    StateCompleted,
    StateEntered,
    StateError,
    StateFailed,
)
from ..ids import ArtifactId, RunId, StateId
from .errors import (
    CODE_INVALID_ATTEMPT_ENVELOPES,
    CODE_MISSING_RUN_STARTED,
    CODE_RUN_ID_MISMATCH,
    CODE_TERMINAL_WITHOUT_ENTERED,
    InvalidPlanError,
)

__all__ = ["Attempt", "RunHistory", "analyze_history"]


@attrs.frozen(kw_only=True)
class Attempt:
    """One recorded attempt. ``snapshot_id`` is set if it completed, ``error`` if it failed;
    neither if it was abandoned (crash) or is still open at the end of the stream."""

    state_id: StateId
    attempt: int
    base_snapshot_id: ArtifactId
    entered_seq: int
    snapshot_id: ArtifactId | None = None
    error: StateError | None = None

    @property
    def completed(self) -> bool:
        return self.snapshot_id is not None


@attrs.frozen(kw_only=True)
class RunHistory:
    """Summary of a run's stream: enough to resume it or to compare a replay with it."""

    run_id: RunId
    head: int
    run_started: RunStarted
    attempts: tuple[Attempt, ...]
    orphan: Attempt | None
    run_completed: RunCompleted | None

    @property
    def completed_states(self) -> dict[StateId, ArtifactId]:
        """State → snapshot id of its completing attempt."""
        return {a.state_id: a.snapshot_id for a in self.attempts if a.snapshot_id is not None}

    @property
    def checkpoint(self) -> ArtifactId:
        """The latest context snapshot: the initial one, then each completed state's."""
        snap = self.run_started.initial_snapshot_id
        for a in self.attempts:
            if a.snapshot_id is not None:
                snap = a.snapshot_id
        return snap

    def last_attempt(self, state_id: str) -> Attempt | None:
        found = None
        for a in self.attempts:
            if a.state_id == state_id:
                found = a
        return found


def _invalid(detail: str) -> InvalidPlanError:
    return InvalidPlanError(f"invalid attempt envelopes in event stream: {detail}",
                            code=CODE_INVALID_ATTEMPT_ENVELOPES)


def analyze_history(run_id: RunId, stream: Sequence[EventEnvelope]) -> RunHistory:
    """Check and summarise ``stream`` (the whole stream of ``run_id``, ascending).

    Raises ``InvalidPlanError`` with code ``run_id_mismatch``, ``invalid_attempt_envelopes``,
    ``terminal_without_entered`` or ``missing_run_started``.
    """
    started: RunStarted | None = None
    completed: RunCompleted | None = None
    attempts: list[Attempt] = []
    open_: Attempt | None = None
    last_seq = 0
    for env in stream:
        if env.run_id != run_id:
            raise InvalidPlanError("event stream run_id mismatch", code=CODE_RUN_ID_MISMATCH)
        if env.seq <= last_seq:
            raise _invalid(f"seq {env.seq} after {last_seq}")
        last_seq = env.seq
        ev = env.event
        if isinstance(ev, RunStarted):
            if open_ is not None or started is not None:
                raise _invalid(f"unexpected RunStarted at seq {env.seq}")
            started = ev
        elif isinstance(ev, StateEntered):
            if open_ is not None:
                if ev.state_id != open_.state_id or ev.attempt <= open_.attempt:
                    raise _invalid(f"StateEntered at seq {env.seq} while "
                                   f"{open_.state_id} attempt {open_.attempt} is open")
                attempts.append(open_)  # abandoned by a crash, superseded by recovery
            open_ = Attempt(state_id=ev.state_id, attempt=ev.attempt,
                            base_snapshot_id=ev.base_snapshot_id, entered_seq=env.seq)
        elif isinstance(ev, StateCompleted | StateFailed):
            if open_ is None:
                raise InvalidPlanError("state terminal without StateEntered",
                                       code=CODE_TERMINAL_WITHOUT_ENTERED)
            if ev.state_id != open_.state_id:
                raise _invalid(f"{type(ev).__name__} for {ev.state_id} at seq {env.seq} "
                               f"while {open_.state_id} is open")
            if isinstance(ev, StateCompleted):
                attempts.append(attrs.evolve(open_, snapshot_id=ev.context_snapshot_id))
            else:
                attempts.append(attrs.evolve(open_, error=ev.error))
            open_ = None
        elif isinstance(ev, RunCompleted):
            if open_ is not None:
                raise _invalid(f"RunCompleted at seq {env.seq} inside an open attempt")
            if completed is None:
                completed = ev
    if started is None:
        raise InvalidPlanError("missing RunStarted kernel event", code=CODE_MISSING_RUN_STARTED)
    return RunHistory(run_id=run_id, head=last_seq, run_started=started,
                      attempts=tuple(attempts), orphan=open_, run_completed=completed)
