"""Offline replay of a recorded run, from a copied file, writing nothing to it.

:func:`replay` opens the copy read-only, re-executes the run with ``ReplayIo`` over the original
run's facts, under the same run id (so time and random facts resolve to the same keys), sends
every new event and artifact to an in-memory overlay (:class:`OverlayStore`), and compares each
state's ``StateCompleted`` snapshot id, and the final snapshot id, with the recorded ones.

What is replayed, and the limits:

- Each state runs once, as the attempt that decided it in the original run (the completing
  attempt, or the last failed attempt of a failed run), with that attempt's number, from the
  replayed base snapshot. Earlier failed or abandoned attempts are not replayed, and no retry
  policy or backoff applies.
- Only what went through ``io`` is reproduced: a handler must be deterministic given its
  context and its facts. A call without ``fact_key`` fails in replay (``missing_fact_key``),
  as does any fact the original attempt did not record (reported as ``MISSING_FACT`` with the
  key). Transports are never built or called.
- Domain events are not compared (only snapshot ids are), and ``Minimal`` runs do not keep them.
- A run that had not finished (no ``RunCompleted``) is replayed up to its last decided state;
  the report says so (``source_finished`` is false) and there is no final snapshot to compare.
- The plan must be the one the run was recorded with, or a changed version of it with the same
  op id and state ids; the report names the first state whose snapshot differs.
"""

from __future__ import annotations

import enum
import os
from typing import Any

import attrs

from ..events import StateError
from ..facts import FactIndex
from ..ids import ArtifactId, FactKey, RunId, StateId
from ..sqlite import SqliteStore
from ..stores import Store
from .history import Attempt, RunHistory
from .manifest import IoMode, load_manifest
from .overlay import OverlayStore
from .plan import ExecutionPlan
from .runner import Execution, check_resumable, load_history
from .writer import RunWriter

__all__ = ["ReplayOutcome", "ReplayReport", "replay", "replay_store"]


class ReplayOutcome(enum.Enum):
    IDENTICAL = "identical"
    DIVERGED = "diverged"
    MISSING_FACT = "missing_fact"


@attrs.frozen(kw_only=True)
class ReplayReport:
    """The result of an offline replay.

    ``outcome`` is ``IDENTICAL`` when every replayed state produced the recorded snapshot (and
    the final snapshot matches); else ``state_id`` names the first state that differed, with
    the recorded and replayed snapshot ids (``None`` where that side failed) and the replay's
    ``error``; ``MISSING_FACT`` also gives ``missing_fact_key``.
    """

    run_id: RunId
    outcome: ReplayOutcome
    states_matched: int
    source_finished: bool
    state_id: StateId | None = None
    recorded_snapshot_id: ArtifactId | None = None
    replayed_snapshot_id: ArtifactId | None = None
    missing_fact_key: FactKey | None = None
    error: StateError | None = None
    recorded_final_snapshot_id: ArtifactId | None = None
    replayed_final_snapshot_id: ArtifactId | None = None

    @property
    def identical(self) -> bool:
        return self.outcome is ReplayOutcome.IDENTICAL

    def __str__(self) -> str:
        if self.identical:
            tail = "" if self.source_finished else " (source run not finished)"
            return (f"run {self.run_id}: replay identical over {self.states_matched} "
                    f"state(s){tail}")
        if self.outcome is ReplayOutcome.MISSING_FACT:
            return (f"run {self.run_id}: replay stopped at {self.state_id}: missing fact "
                    f"{self.missing_fact_key!r}")
        where = self.state_id or "final snapshot"
        why = (f"; replay failed: {self.error.info.code}" if self.error is not None else "")
        return (f"run {self.run_id}: replay diverged at {where}: recorded "
                f"{self.recorded_snapshot_id}, replayed {self.replayed_snapshot_id}{why}")


def _deciding_attempt(history: RunHistory, state_id: StateId) -> Attempt | None:
    decided = [a for a in history.attempts
               if a.state_id == state_id and (a.completed or a.error is not None)]
    return decided[-1] if decided else None


async def replay_store(source: Store, run_id: RunId, plan: ExecutionPlan) -> ReplayReport:
    """Replay ``run_id`` of ``source`` with ``plan``; ``source`` is only read.

    Raises as :func:`~mfm_store.engine.resume` does for a missing run, a malformed stream, a
    corrupt manifest or a plan that does not fit the run.
    """
    history = await load_history(source, run_id)
    manifest = await load_manifest(source, history.run_started.manifest_id)
    order = check_resumable(plan, manifest, history)
    done = history.run_completed
    recorded_final = done.final_snapshot_id if done is not None else None

    def report(outcome: ReplayOutcome, matched: int, **fields: Any) -> ReplayReport:
        return ReplayReport(run_id=run_id, outcome=outcome, states_matched=matched,
                            source_finished=done is not None,
                            recorded_final_snapshot_id=recorded_final, **fields)

    async with OverlayStore(source) as overlay:
        writer = RunWriter(overlay, run_id, 0)
        await writer.append([history.run_started])
        execution = Execution(overlay, run_id, order, manifest.run_config, writer=writer,
                              facts=await FactIndex.from_store(source, run_id),
                              io_mode=IoMode.REPLAY)
        current = history.run_started.initial_snapshot_id
        matched = 0
        for state in order:
            recorded = _deciding_attempt(history, state.state_id)
            if recorded is None:
                break
            outcome = await execution.execute_attempt(state, recorded.attempt, current)
            if execution.missing_facts:
                return report(ReplayOutcome.MISSING_FACT, matched, state_id=state.state_id,
                              recorded_snapshot_id=recorded.snapshot_id,
                              missing_fact_key=execution.missing_facts[0], error=outcome.error)
            same = (outcome.snapshot_id == recorded.snapshot_id if recorded.completed else
                    outcome.error is not None and recorded.error is not None
                    and outcome.error.info.code == recorded.error.info.code)
            if not same:
                return report(ReplayOutcome.DIVERGED, matched, state_id=state.state_id,
                              recorded_snapshot_id=recorded.snapshot_id,
                              replayed_snapshot_id=outcome.snapshot_id, error=outcome.error)
            matched += 1
            if outcome.snapshot_id is None:
                break
            current = outcome.snapshot_id
        replayed_final = current if done is not None else None
        if done is not None and replayed_final != recorded_final:
            return report(ReplayOutcome.DIVERGED, matched, recorded_snapshot_id=recorded_final,
                          replayed_snapshot_id=replayed_final,
                          replayed_final_snapshot_id=replayed_final)
        return report(ReplayOutcome.IDENTICAL, matched, replayed_final_snapshot_id=replayed_final)


async def replay(source_path: str | os.PathLike[str], run_id: RunId | str,
                 plan: ExecutionPlan) -> ReplayReport:
    """Open the SQLite file at ``source_path`` read-only and :func:`replay_store` a run of it.

    Nothing is written to the file, its folder, or a WAL: new events and artifacts live in
    memory and are dropped with the report.
    """
    rid = run_id if isinstance(run_id, RunId) else RunId.parse(run_id)
    async with SqliteStore.open(source_path, read_only=True) as source:
        return await replay_store(source, rid, plan)

