"""Recording facts through LiveIo against raw sqlite3, eventsourcing and DBOS."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from typing import Any

from mfm_store.canonical import canonical_json_bytes
from mfm_store.facts import FactIndex, StoreFactRecorder
from mfm_store.ids import RunId, StateId
from mfm_store.live_io import IoCall, LiveIo
from mfm_store.sqlite import SqliteStore
from mfm_store.stores import ArtifactKind

from ..context import Context
from ..harness import Sample, Side, Stopwatch, Target
from ..peers import DbosPeer, EventsourcingPeer
from ..raw import RawDb, artifact_row, event_rows
from ..results import ScenarioResult
from ..workload import fact_answer, fact_recorded
from ._base import Scenario, ratio

__all__ = ["SCENARIOS"]

_STATE = StateId("bench.main.fetch")
_NAMESPACE = "bench.quotes"
_TASKS = 100


class InstantTransport:
    """Answers at once, deterministically from the request: the IO costs nothing."""

    async def call(self, call: IoCall) -> Any:
        request = call.request
        assert isinstance(request, dict)
        return fact_answer(request["i"])


def _calls(n: int) -> list[IoCall]:
    return [IoCall(_NAMESPACE, {"i": i}, fact_key=f"quote:{i}") for i in range(n)]


def _live_io(store: SqliteStore, run_id: RunId) -> LiveIo:
    return LiveIo(run_id, _STATE, 0, store, FactIndex(), StoreFactRecorder(store, run_id),
                  InstantTransport())


def _live_sides(store: SqliteStore, n: int) -> list[Side]:
    async def sequential(_r: int) -> Sample:
        io, calls = _live_io(store, RunId.new()), _calls(n)
        sw = Stopwatch()
        with sw.timing():
            for call in calls:
                await io.call(call)
        return sw.sample(n)

    per_task = max(1, n // _TASKS)

    async def worker(io: LiveIo, calls: list[IoCall]) -> None:
        for call in calls:
            await io.call(call)

    async def concurrent(_r: int) -> Sample:
        plans = [(_live_io(store, RunId.new()), _calls(per_task)) for _ in range(_TASKS)]
        sw = Stopwatch()
        with sw.timing():
            await asyncio.gather(*(worker(io, calls) for io, calls in plans))
        return sw.sample(per_task * _TASKS)

    return [Side("live_seq", "LiveIo.call, 1 task", "facts", sequential),
            Side(f"live_c{_TASKS}", f"LiveIo.call, {_TASKS} tasks on distinct runs", "facts",
                 concurrent)]


def _raw_side(raw: RawDb, n: int) -> Side:
    async def run(_r: int) -> Sample:
        run_id = RunId.new()
        kind = str(ArtifactKind.FACT_PAYLOAD)
        arts = [artifact_row(kind, canonical_json_bytes(fact_answer(i))) for i in range(n)]
        rows = event_rows([fact_recorded(run_id, i + 1, f"quote:{i}", a[0])
                           for i, a in enumerate(arts)])
        pk = raw.new_run(str(run_id))
        sw = Stopwatch()
        with sw.timing():
            for i, (art, row) in enumerate(zip(arts, rows, strict=True)):
                raw.record_fact(pk, art, f"quote:{i}", row)
        return sw.sample(n)

    return Side("raw", "sqlite3: artifact + binding + event + head, 1 transaction", "facts", run)


def _es_sides(peer: EventsourcingPeer, n: int) -> list[Side]:
    state = canonical_json_bytes(fact_answer(0))

    async def one_per_tx(_r: int) -> Sample:
        peer.new_stream()
        events = peer.make_events(n, state)
        sw = Stopwatch()
        with sw.timing():
            for e in events:
                peer.insert([e])
        return sw.sample(n)

    async def hundred_per_tx(_r: int) -> Sample:
        peer.new_stream()
        events = peer.make_events(n, state)
        batches = [events[i:i + 100] for i in range(0, n, 100)]
        sw = Stopwatch()
        with sw.timing():
            for b in batches:
                peer.insert(b)
        return sw.sample(n)

    return [Side("es_1", "eventsourcing SQLite recorder, 1 event/transaction", "events",
                 one_per_tx),
            Side("es_100", "eventsourcing SQLite recorder, 100 events/transaction", "events",
                 hundred_per_tx)]


def _dbos_sides(peer: DbosPeer, steps: int) -> list[Side]:
    async def sequential(_r: int) -> Sample:
        sw = Stopwatch()
        with sw.timing():
            await peer.run_sequential(steps)
        return sw.sample(steps)

    per_wf = max(2, steps // 100)

    async def concurrent(_r: int) -> Sample:
        sw = Stopwatch()
        with sw.timing():
            await peer.run_concurrent(_TASKS, per_wf)
        return sw.sample(_TASKS * per_wf)

    return [Side("dbos_seq", f"DBOS workflow of {steps} steps (sync)", "steps", sequential),
            Side(f"dbos_c{_TASKS}", f"{_TASKS} DBOS async workflows of {per_wf} steps",
                 "steps", concurrent)]


async def facts(ctx: Context) -> ScenarioResult:
    p = ctx.profile
    res = ScenarioResult(
        "facts", "Fact recording through LiveIo (durable, instant transport)",
        f"ours: LiveIo.call with a fresh fact key ({p.facts} per round) and StoreFactRecorder: "
        "canonical JSON, SHA-256, in-memory bind, then payload artifact + binding + "
        "fact_recorded event made durable (full) before the call returns. "
        "raw: the same rows in one transaction per fact. eventsourcing: "
        f"{p.peer_events} events per round. DBOS: steps of a workflow (its system database "
        "on SQLite, WAL, synchronous=FULL).")
    async with AsyncExitStack() as stack:
        store = await SqliteStore.open(ctx.path("ours"), durability="full")
        stack.push_async_callback(store.close)
        raw = RawDb(ctx.path("raw"), "full")
        stack.callback(raw.close)
        sides = [*_live_sides(store, p.facts), _raw_side(raw, p.facts)]
        reason = ctx.peer("eventsourcing")
        if reason is None:
            es = EventsourcingPeer(ctx.path("eventsourcing"))
            stack.callback(es.close)
            res.notes.append(f"eventsourcing {ctx.peers['eventsourcing'].version} connection: "
                             f"{es.pragmas()}")
            sides += _es_sides(es, p.peer_events)
        else:
            res.skipped["eventsourcing"] = reason
        reason = ctx.peer("dbos")
        if reason is None:
            dbos = DbosPeer(ctx.path("dbos"))
            stack.callback(dbos.close)
            res.notes.append(f"DBOS {ctx.peers['dbos'].version} system database: "
                             f"{dbos.description}")
            sides += _dbos_sides(dbos, p.dbos_steps)
        else:
            res.skipped["dbos"] = reason
        samples = await ctx.measure(sides)
    res.add_sides(sides, samples)
    names = set(samples)
    c = f"_c{_TASKS}"
    wanted = [
        ("live_seq", "dbos_seq", "1 task: facts/s over DBOS steps/s (one workflow)",
         Target(">=", 10)),
        ("live" + c, "dbos" + c, f"{_TASKS} tasks: facts/s over DBOS steps/s ({_TASKS} "
         "workflows)", Target(">=", 10)),
        ("live_seq", "es_1", "1 task: facts/s over eventsourcing's single-event rate",
         Target(">=", 1.2)),
        ("live" + c, "es_1", f"{_TASKS} tasks: facts/s over eventsourcing's single-event rate",
         Target(">=", 1.2)),
        ("live_seq", "raw", "1 task: facts/s over raw sqlite3 writing the same rows", None),
        ("raw", "es_1", "the physical ceiling: raw sqlite3 fact rows over eventsourcing's "
         "single-event rate", None),
        ("live" + c, "live_seq", f"{_TASKS} tasks over 1 (group commit)", None),
        ("live" + c, "es_100", f"{_TASKS} tasks over eventsourcing at 100 events/transaction",
         None),
    ]
    for num, den, text, target in wanted:
        if num in names and den in names:
            res.findings.append(ratio(samples, num, den, text, target))
    return res


SCENARIOS = [Scenario("facts", "fact recording through LiveIo vs peers", facts)]
