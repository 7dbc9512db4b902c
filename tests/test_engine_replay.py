"""Offline replay: a copied file replayed read-only, compared state by state."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from helpers.engine import (
    S2,
    S3,
    CountingFactory,
    Crash,
    record,
    recorded_plan,
    stream,
)

from mfm_store import RunId, RunStatus, StateCompleted, Store
from mfm_store.engine import (
    Context,
    EventRecorder,
    ExecutionPlan,
    PlanState,
    ReplayOutcome,
    replay,
    replay_store,
    resume,
    start,
)
from mfm_store.sqlite import SqliteStore


def folder_state(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


async def backup_copy(tmp_path: Path) -> tuple[RunId, Path]:
    live = tmp_path / "live" / "run.db"
    live.parent.mkdir()
    run_id = await record(live)
    copy_dir = tmp_path / "copy"
    copy_dir.mkdir()
    async with SqliteStore.open(live) as store:
        await store.backup(copy_dir / "run.db")
    return run_id, copy_dir / "run.db"


async def test_replay_of_a_backup_copy_is_identical_and_leaves_the_copy_unchanged(
        tmp_path: Path) -> None:
    run_id, copy = await backup_copy(tmp_path)
    before = folder_state(copy.parent)
    os.chmod(copy, 0o444)
    report = await replay(copy, str(run_id), recorded_plan())
    assert report.outcome is ReplayOutcome.IDENTICAL, str(report)
    assert report.identical and report.source_finished
    assert report.states_matched == 3
    assert report.replayed_final_snapshot_id == report.recorded_final_snapshot_id is not None
    assert folder_state(copy.parent) == before


async def test_replay_of_a_changed_plan_reports_the_diverging_state(tmp_path: Path) -> None:
    run_id, copy = await backup_copy(tmp_path)
    report = await replay(copy, run_id, recorded_plan(s2_bonus=1))
    assert report.outcome is ReplayOutcome.DIVERGED
    assert report.state_id == S2
    assert report.states_matched == 1
    async with SqliteStore.open(copy, read_only=True) as source:
        recorded = {e.event.state_id: e.event.context_snapshot_id
                    for e in await stream(source, run_id) if isinstance(e.event, StateCompleted)}
    assert report.recorded_snapshot_id == recorded[S2]
    assert report.replayed_snapshot_id not in (None, recorded[S2])
    assert "diverged at machine.main.s2" in str(report)


async def test_replay_reports_the_missing_fact(tmp_path: Path) -> None:
    run_id, copy = await backup_copy(tmp_path)
    report = await replay(copy, run_id, recorded_plan(s2_extra_fact=True))
    assert report.outcome is ReplayOutcome.MISSING_FACT
    assert report.state_id == S2
    assert report.missing_fact_key == "price:Y"
    assert report.error is not None and report.error.info.code == "missing_fact"


async def test_replay_over_any_store_writes_nothing_to_it(store: Store) -> None:
    result = await start(store, recorded_plan(), transports=CountingFactory(fail_first=1))
    before = await stream(store, result.run_id)
    runs_before = await store.list_runs()
    report = await replay_store(store, result.run_id, recorded_plan())
    assert report.identical, str(report)
    assert await stream(store, result.run_id) == before
    assert await store.list_runs() == runs_before


async def test_replay_of_an_unfinished_run_compares_what_was_decided(store: Store) -> None:
    crashes = [Crash()]

    async def boom(ctx: Context, io: Any, rec: EventRecorder) -> None:
        if crashes:
            raise crashes.pop()

    base = recorded_plan()
    plan = ExecutionPlan("op", [*base.states[:2], PlanState(S3, boom)])
    with pytest.raises(Crash):
        await start(store, plan, transports=CountingFactory())
    (run,) = await store.list_runs()
    report = await replay_store(store, run.run_id, plan)
    assert report.identical and not report.source_finished
    assert report.states_matched == 2
    assert report.recorded_final_snapshot_id is None
    finished = await resume(store, run.run_id, plan)
    assert finished.status is RunStatus.COMPLETED
    assert (await replay_store(store, run.run_id, plan)).states_matched == 3
