"""Runs that must stay finishable and faithful at the edges: refused events, transports' own
Python values, facts bound without ``meta``, cancellation while a commit is under way."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from helpers.engine import S1, CountingFactory, domain_events, seed_run

from mfm_store import ArtifactKind, DomainEvent, EventEnvelope, RunStatus, Store
from mfm_store.engine import (
    Context,
    EventProfile,
    EventRecorder,
    ExecutionPlan,
    PlanState,
    RunConfig,
    RunManifest,
    replay_store,
    resume,
    start,
)
from mfm_store.engine.writer import RunWriter
from mfm_store.ids import RunId
from mfm_store.live_io import IoCall
from mfm_store.sqlite import SqliteStore

NORMAL = RunConfig(event_profile=EventProfile.NORMAL)


def one_state(handler: Any) -> ExecutionPlan:
    return ExecutionPlan("machine", [PlanState(S1, handler)])


@pytest.mark.parametrize("payload", [{"pair": (1, 2)}, {"big": 2**70}, {"s": "\ud800"}])
async def test_an_unstorable_domain_event_fails_the_state_not_the_run_forever(
        store: Store, payload: Any) -> None:
    async def handler(ctx: Context, io: Any, rec: EventRecorder) -> None:
        await rec.emit(DomainEvent("progress", payload))

    result = await start(store, one_state(handler), config=NORMAL)
    assert result.status is RunStatus.FAILED
    assert result.error is not None and result.error.info.code == "domain_event_invalid"
    assert await domain_events(store, result.run_id, "progress") == []
    again = await resume(store, result.run_id, one_state(handler))
    assert again.status is RunStatus.FAILED  # a finished run: resume is a no-op


async def test_a_handler_may_not_write_fact_recorded_itself(store: Store) -> None:
    async def handler(ctx: Context, io: Any, rec: EventRecorder) -> None:
        await rec.emit(DomainEvent("fact_recorded", {"key": "k", "payload_id": "0" * 64,
                                                     "meta": {}}))

    result = await start(store, one_state(handler), config=NORMAL)
    assert result.status is RunStatus.FAILED
    assert result.error is not None and result.error.info.code == "domain_event_invalid"
    assert await store.facts(result.run_id) == {}


async def test_live_and_replay_hand_the_handler_the_same_value(store: Store) -> None:
    transport = CountingFactory(answer={"b": 1, "a": (2, 3)})

    async def handler(ctx: Context, io: Any, rec: EventRecorder) -> None:
        answer = (await io.call(IoCall("test.get", {}, "quote"))).response
        ctx["first_key"] = next(iter(answer))
        ctx["a_is_list"] = isinstance(answer["a"], list)

    result = await start(store, one_state(handler), transports=transport)
    assert result.final_context == {"first_key": "a", "a_is_list": True}
    report = await replay_store(store, result.run_id, one_state(handler))
    assert report.identical, str(report)


async def test_resume_uses_a_fact_bound_without_meta(store: Store) -> None:
    run_id = await seed_run(store, RunManifest(op_id="machine"))
    pid = await store.put(ArtifactKind.FACT_PAYLOAD, b'{"n":41}')
    await store.append(run_id, 1, [EventEnvelope(run_id, 2, None, DomainEvent(
        "fact_recorded", {"key": "quote", "payload_id": pid}))])  # e.g. imported, no meta
    assert await store.get_fact(run_id, "quote") == pid
    transport = CountingFactory()

    async def handler(ctx: Context, io: Any, rec: EventRecorder) -> None:
        ctx["quote"] = (await io.call(IoCall("test.get", {}, "quote"))).response

    result = await resume(store, run_id, one_state(handler), transports=transport)
    assert result.status is RunStatus.COMPLETED
    assert result.final_context == {"quote": {"n": 41}}
    assert transport.calls == 0


async def test_a_cancelled_append_that_commits_on_the_thread_keeps_the_head_true(
        tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    run = RunId.new()
    async with SqliteStore.open(path, busy_timeout=30) as store:
        writer = RunWriter(store, run, 0)
        await writer.append([DomainEvent("first")])
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        task = asyncio.create_task(writer.append([DomainEvent("second")]))
        # White box: the only signal that the batch waits for the lock on the writer's thread.
        while not store._writer._on_thread:  # type: ignore[union-attr]
            await asyncio.sleep(0)
        task.cancel()
        other.execute("COMMIT")
        other.close()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await store.head_seq(run) == 2  # the commit went through
        assert writer.head == 2  # and the writer knows it
        assert await writer.append([DomainEvent("third")]) == 3
