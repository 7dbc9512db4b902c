"""Recording facts through LiveIo against raw sqlite3, eventsourcing and DBOS.

Raw sqlite3 writes the same rows as our store (payload artifact, binding, ``fact_recorded``
event, run head, with the file's row checksums): one transaction per fact beside our single
task, 100 facts per transaction beside our 100 tasks (group commit). Facts are recorded into
runs that already exist, as the engine's would be (a first event appended before the clock
starts, on both sides). An fsync-free pair (files on ``/dev/shm`` where there is one,
``synchronous=OFF``) measures the Python cost per fact in CPU time, and one profiled round of
it splits our time between the IO layer (``LiveIo``, ``FactIndex``) and the store.
"""

from __future__ import annotations

import asyncio
import cProfile
import hashlib
import inspect
import os
import pstats
import sqlite3
import tempfile
import time
from collections.abc import Awaitable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from mfm_store.canonical import canonical_json_bytes
from mfm_store.events import EventEnvelope
from mfm_store.facts import FactIndex, StoreFactRecorder
from mfm_store.ids import RunId, StateId
from mfm_store.live_io import IoCall, LiveIo
from mfm_store.sqlite import SqliteStore
from mfm_store.stores import ArtifactKind

from ..context import Context
from ..harness import TIMES, Finding, Sample, Side, Stepper, Stopwatch, Target, Turns
from ..peers import DbosPeer, EventsourcingPeer
from ..raw import RawDb, RawFact, event_rows, raw_fact
from ..results import ScenarioResult
from ..workload import bench_event, fact_answer, fact_recorded
from ._base import Scenario, ratio

__all__ = ["SCENARIOS"]

_STATE = StateId("bench.main.fetch")
_NAMESPACE = "bench.quotes"
_TASKS = 100
_KIND = str(ArtifactKind.FACT_PAYLOAD)
_US = "\u00b5s"


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


async def _started_run(store: SqliteStore) -> RunId:
    """A run the store has written to, as the engine's run is when its states record facts."""
    run_id = RunId.new()
    await store.append(run_id, 0, [EventEnvelope(run_id, 1, None, bench_event(1))])
    return run_id


def _raw_facts(raw: RawDb, n: int) -> list[RawFact]:
    run_id = RunId.new()
    pk = raw.new_run(str(run_id))
    raw.append(pk, event_rows([EventEnvelope(run_id, 1, None, bench_event(1))]))
    run = raw.run(pk)
    payloads = [canonical_json_bytes(fact_answer(i)) for i in range(n)]
    facts = []
    for i, payload in enumerate(payloads):
        key = f"quote:{i}"
        pid = hashlib.sha256(payload).hexdigest()
        (event,) = event_rows([fact_recorded(run_id, i + 2, key, pid)])
        facts.append(raw_fact(run, payload, _KIND, key, event))
    return facts


def _seq_pair(store: SqliteStore, raw: RawDb, n: int, suffix: str = "") -> list[Stepper]:
    """One task: ``n`` facts, each awaited before the next; raw: one transaction per fact."""

    async def ours(_r: int) -> Turns:
        run_id = await _started_run(store)
        io, calls = _live_io(store, run_id), _calls(n)

        def step(i: int) -> Awaitable[object]:
            return io.call(calls[i])

        return Turns(n, step, n)

    async def theirs(_r: int) -> Turns:
        facts = _raw_facts(raw, n)

        def step(i: int) -> None:
            raw.record_fact(facts[i])

        return Turns(n, step, n)

    return [Stepper(f"live_seq{suffix}", "LiveIo.call, 1 task", "facts", ours),
            Stepper(f"raw{suffix}", "sqlite3: artifact + binding + event + head, "
                    "1 transaction per fact", "facts", theirs)]


def _concurrent_pair(store: SqliteStore, raw: RawDb, n: int) -> list[Stepper]:
    """``_TASKS`` tasks on distinct runs, each recording one fact per step; raw: the facts of
    one step (one per run) in one transaction."""
    per_task = max(4, n // _TASKS)

    async def worker(io: LiveIo, call: IoCall) -> None:
        await io.call(call)

    async def ours(_r: int) -> Turns:
        ios = [_live_io(store, await _started_run(store)) for _ in range(_TASKS)]
        calls = _calls(per_task)

        def step(i: int) -> Awaitable[object]:
            return asyncio.gather(*(worker(io, calls[i]) for io in ios))

        return Turns(per_task, step, per_task * _TASKS)

    async def theirs(_r: int) -> Turns:
        runs = [_raw_facts(raw, per_task) for _ in range(_TASKS)]

        def step(i: int) -> None:
            raw.record_facts([facts[i] for facts in runs])

        return Turns(per_task, step, per_task * _TASKS)

    return [Stepper(f"live_c{_TASKS}", f"LiveIo.call, {_TASKS} tasks on distinct runs",
                    "facts", ours),
            Stepper(f"raw_c{_TASKS}", f"sqlite3: the same rows, {_TASKS} facts per "
                    "transaction (executemany)", "facts", theirs)]


# The fsync-free breakdown: CPU per fact, ours and raw taking turns fact by fact.

_GROUPS = ("io layer (LiveIo, FactIndex, canonical JSON)", "store (mfm_store.sqlite, "
           "events, rules)", "sqlite3 calls (C)", "asyncio", "other")
_STORE_FILES = ("/mfm_store/sqlite/", "/mfm_store/events", "/mfm_store/_rules.py",
                "/mfm_store/stores.py")


def _group_of(key: tuple[str, int, str]) -> int | None:
    """Index in ``_GROUPS`` of a profiled function; None for a builtin (charged to its
    callers)."""
    filename, _line, name = key
    if filename == "~":
        return 2 if "sqlite3." in name else None
    path = filename.replace(os.sep, "/")
    if "/mfm_store/" in path:
        return 1 if any(part in path for part in _STORE_FILES) else 0
    if "/asyncio/" in path:
        return 3
    return 4


def _split(profile: cProfile.Profile) -> list[float]:
    """Own time (seconds) per group of ``_GROUPS``; a builtin's time goes to its callers'
    groups (pro rata, from the profile's caller records)."""
    stats: dict[Any, Any] = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    totals = [0.0] * len(_GROUPS)
    for key, (_cc, _nc, tt, _ct, callers) in stats.items():
        group = _group_of(key)
        if group is not None:
            totals[group] += tt
            continue
        for caller, (_c, _n, caller_tt, _cumt) in callers.items():
            caller_group = _group_of(caller)
            totals[4 if caller_group is None else caller_group] += caller_tt
    return totals


def _fsync_free_store_off(store: SqliteStore) -> bool:
    """Set ``synchronous=OFF`` on the store's write connection if the writer exposes it
    (a benchmark-only reach into the writer; ``normal`` on tmpfs does no fsync either)."""
    conn = getattr(getattr(store, "_writer", None), "_conn", None)
    if isinstance(conn, sqlite3.Connection):
        conn.execute("PRAGMA synchronous = OFF")
        return True
    return False


def _on_loop_supported() -> bool:
    return "commit_on_loop" in inspect.signature(SqliteStore.open).parameters


async def _fsync_free_pair(ctx: Context, stack: AsyncExitStack, on_loop: bool
                           ) -> tuple[SqliteStore, bool, RawDb]:
    """Our store (``normal``, fsync off where it can be) and raw sqlite3 at ``synchronous=OFF``
    in a temporary folder on /dev/shm (else the work folder), closed with ``stack``; the
    flag says whether our fsync is really off."""
    shm = Path("/dev/shm")
    base = shm if shm.is_dir() and os.access(shm, os.W_OK) else ctx.workdir
    folder = Path(stack.enter_context(tempfile.TemporaryDirectory(dir=base)))
    store = await SqliteStore.open(folder / "ours.db", durability="normal",
                                   commit_on_loop=True if on_loop else None)
    stack.push_async_callback(store.close)
    off = _fsync_free_store_off(store)
    raw = RawDb(folder / "raw.db", "off")
    stack.callback(raw.close)
    return store, off, raw


async def _cpu_breakdown(ctx: Context, res: ScenarioResult, n: int,
                         on_loop: bool = False) -> list[Finding]:
    """``on_loop``: the store commits on the loop's thread (``commit_on_loop=True``), so the
    figure leaves out the hand-over to the writer thread and back."""
    tag = ", commit_on_loop" if on_loop else ""
    async with AsyncExitStack() as stack:
        store, off, raw = await _fsync_free_pair(ctx, stack, on_loop)
        clock = time.process_time_ns
        ours_us: list[float] = []
        raw_us: list[float] = []
        for r in range(-ctx.profile.warmup, ctx.profile.rounds):
            io, calls = _live_io(store, await _started_run(store)), _calls(n)
            facts = _raw_facts(raw, n)
            t_ours = t_raw = 0
            for i in range(n):
                a = clock()
                await io.call(calls[i])
                b = clock()
                raw.record_fact(facts[i])
                t_ours += b - a
                t_raw += clock() - b
            if r >= 0:
                ours_us.append(t_ours / n / 1000)
                raw_us.append(t_raw / n / 1000)
        profile = cProfile.Profile()
        io, calls = _live_io(store, await _started_run(store)), _calls(n)
        profile.enable()
        for call in calls:
            await io.call(call)
        profile.disable()
    split = _split(profile)
    total = sum(split) or 1.0
    raw_median = sorted(raw_us)[len(raw_us) // 2]
    ours_median = sorted(ours_us)[len(ours_us) // 2]
    res.notes.append(
        f"fsync-free breakdown{tag} on {store.path.parent.parent} (raw: synchronous=OFF; ours: "
        f"{'synchronous=OFF' if off else 'normal'}), CPU time per fact (all threads), {n} "
        f"facts per round: ours {ours_median:.1f} {_US}, raw {raw_median:.1f} {_US}.")
    res.notes.append(
        f"one profiled round of ours{tag} (loop thread only; shares of own time, builtins "
        f"charged to their callers; {_US} scaled to the unprofiled median): " + "; ".join(
            f"{name} {100 * t / total:.0f}% ~{ours_median * t / total:.1f} {_US}"
            for name, t in zip(_GROUPS, split, strict=True)))
    name = "cpu on loop" if on_loop else "cpu"
    return [
        Finding(f"{name}: ours - raw", f"Python per fact above raw sqlite3, both fsync-free "
                f"(CPU {_US} per fact{tag})",
                tuple(o - w for o, w in zip(ours_us, raw_us, strict=True)), _US,
                Target("<=", 35, _US)),
        Finding(f"{name}: ours", f"our CPU {_US} per fact, fsync-free{tag}", tuple(ours_us),
                _US),
        Finding(f"{name}: raw", f"raw sqlite3 CPU {_US} per fact, fsync-free{tag}",
                tuple(raw_us), _US),
    ]


async def _cpu_concurrent(ctx: Context, res: ScenarioResult, n: int,
                          on_loop: bool = False) -> list[Finding]:
    """The fsync-free CPU per fact at ``_TASKS`` tasks (each step: one fact per task, on
    distinct runs; raw: the same facts in one transaction), ours and raw taking turns step by
    step, and one profiled round of ours split as in :func:`_cpu_breakdown`."""
    tag = f", {_TASKS} tasks" + (", commit_on_loop" if on_loop else "")
    per_task = max(4, n // _TASKS)
    async with AsyncExitStack() as stack:
        store, off, raw = await _fsync_free_pair(ctx, stack, on_loop)
        clock = time.process_time_ns
        ours_us: list[float] = []
        raw_us: list[float] = []
        profile = cProfile.Profile()
        for r in range(-ctx.profile.warmup, ctx.profile.rounds + 1):
            ios = [_live_io(store, await _started_run(store)) for _ in range(_TASKS)]
            calls = _calls(per_task)
            runs = [_raw_facts(raw, per_task) for _ in range(_TASKS)]
            profiled = r == ctx.profile.rounds  # the last round, not counted
            t_ours = t_raw = 0
            for i in range(per_task):
                a = clock()
                if profiled:
                    profile.enable()
                await asyncio.gather(*(io.call(calls[i]) for io in ios))
                if profiled:
                    profile.disable()
                b = clock()
                raw.record_facts([facts[i] for facts in runs])
                t_ours += b - a
                t_raw += clock() - b
            if 0 <= r < ctx.profile.rounds:
                ours_us.append(t_ours / (per_task * _TASKS) / 1000)
                raw_us.append(t_raw / (per_task * _TASKS) / 1000)
    split = _split(profile)
    total = sum(split) or 1.0
    ours_median = sorted(ours_us)[len(ours_us) // 2]
    res.notes.append(
        f"fsync-free{tag} on {store.path.parent.parent} (raw: synchronous=OFF, {_TASKS} facts "
        "per transaction; "
        f"ours: {'synchronous=OFF' if off else 'normal'}), CPU time per fact (all threads): "
        f"ours {ours_median:.1f} {_US}, raw {sorted(raw_us)[len(raw_us) // 2]:.1f} {_US}; "
        f"one profiled round (loop thread only): " + "; ".join(
            f"{name} {100 * t / total:.0f}% ~{ours_median * t / total:.1f} {_US}"
            for name, t in zip(_GROUPS, split, strict=True)))
    name = f"cpu c{_TASKS}" + (" on loop" if on_loop else "")
    return [
        Finding(f"{name}: ours - raw", f"Python per fact above raw sqlite3 at {_TASKS} tasks, "
                f"both fsync-free (CPU {_US} per fact{tag})",
                tuple(o - w for o, w in zip(ours_us, raw_us, strict=True)), _US),
        Finding(f"{name}: ours / raw", f"our CPU per fact over raw's at {_TASKS} tasks, "
                f"fsync-free{tag}", tuple(o / w for o, w in zip(ours_us, raw_us, strict=True)),
                TIMES),
    ]


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

    # At least 20 steps per workflow, so that the figure is per step rather than a measure
    # of workflow creation.
    per_wf = max(20, steps // _TASKS)

    async def concurrent(_r: int) -> Sample:
        sw = Stopwatch()
        with sw.timing():
            await peer.run_concurrent(_TASKS, per_wf)
        return sw.sample(_TASKS * per_wf)

    return [Side("dbos_seq", f"DBOS workflow of {steps} steps (sync)", "steps", sequential),
            Side(f"dbos_c{_TASKS}", f"{_TASKS} concurrent DBOS async workflows of {per_wf} "
                 "steps each, per step", "steps", concurrent)]


def _peer_live_seq(store: SqliteStore, n: int) -> Side:
    """LiveIo, 1 task, as a round-level side (for the interleaved peer comparisons)."""

    async def run(_r: int) -> Sample:
        io, calls = _live_io(store, await _started_run(store)), _calls(n)
        sw = Stopwatch()
        with sw.timing():
            for call in calls:
                await io.call(call)
        return sw.sample(n)

    return Side("live_seq_p", "LiveIo.call, 1 task (beside the peers)", "facts", run)


async def facts(ctx: Context) -> ScenarioResult:
    p = ctx.profile
    c = f"_c{_TASKS}"
    res = ScenarioResult(
        "facts", "Fact recording through LiveIo (durable, instant transport)",
        f"ours: LiveIo.call with a fresh fact key and StoreFactRecorder: canonical JSON, "
        "SHA-256, then payload artifact + binding + fact_recorded event + run head made "
        "durable (full) before the call returns, on a run already started. raw: the same rows "
        "(row checksums included) in one transaction per fact, taking turns with ours fact by "
        f"fact ({p.facts} per round); at {_TASKS} tasks, each step records one fact per task "
        f"(ours: {_TASKS} tasks, group commit; raw: {_TASKS} facts per transaction). "
        f"eventsourcing: {p.peer_events} events per round. DBOS: steps of a workflow (its "
        "system database on SQLite, WAL, synchronous=FULL).")
    async with AsyncExitStack() as stack:

        async def store(name: str) -> SqliteStore:
            s = await SqliteStore.open(ctx.path(name), durability="full")
            stack.push_async_callback(s.close)
            return s

        def raw_db(name: str) -> RawDb:
            r = RawDb(ctx.path(name), "full")
            stack.callback(r.close)
            return r

        pairs = [_seq_pair(await store("ours"), raw_db("raw"), p.facts),
                 _concurrent_pair(await store("ours_c"), raw_db("raw_c"), p.facts)]
        samples: dict[str, list[Sample]] = {}
        for pair in pairs:
            samples.update(await ctx.measure_alternating(pair))
        res.add_sides([s for pair in pairs for s in pair], samples)
        peer_sides: list[Side] = []
        reason = ctx.peer("eventsourcing")
        if reason is None:
            es = EventsourcingPeer(ctx.path("eventsourcing"))
            stack.callback(es.close)
            res.notes.append(f"eventsourcing {ctx.peers['eventsourcing'].version} connection: "
                             f"{es.pragmas()}")
            peer_sides += _es_sides(es, p.peer_events)
        else:
            res.skipped["eventsourcing"] = reason
        reason = ctx.peer("dbos")
        if reason is None:
            dbos = DbosPeer(ctx.path("dbos"))
            stack.callback(dbos.close)
            res.notes.append(f"DBOS {ctx.peers['dbos'].version} system database: "
                             f"{dbos.description}")
            peer_sides += _dbos_sides(dbos, p.dbos_steps)
        else:
            res.skipped["dbos"] = reason
        if peer_sides:
            peer_sides.insert(0, _peer_live_seq(await store("ours_p"), p.facts))
            peer_samples = await ctx.measure(peer_sides)
            res.add_sides(peer_sides, peer_samples)
            samples.update(peer_samples)
    names = set(samples)
    wanted = [
        ("live_seq", "raw", "1 task: facts/s over raw sqlite3 writing the same rows, one "
         "transaction per fact", Target(">=", 0.85)),
        ("live" + c, "raw" + c, f"{_TASKS} tasks: facts/s over raw sqlite3 writing the same "
         f"rows, {_TASKS} facts per transaction", Target(">=", 0.6)),
        ("live" + c, "live_seq", f"{_TASKS} tasks over 1 (group commit)", None),
        ("live_seq_p", "dbos_seq", "1 task: facts/s over DBOS steps/s (one workflow)",
         Target(">=", 10)),
        ("live" + c, "dbos" + c, f"{_TASKS} tasks: facts/s over DBOS steps/s ({_TASKS} "
         "concurrent workflows of at least 20 steps each)", None),
        ("live_seq_p", "es_1", "1 task: facts/s over eventsourcing's single-event rate",
         Target(">=", 1.2)),
        ("live_seq_p", "es_100", "1 task: facts/s over eventsourcing at 100 "
         "events/transaction", None),
        ("raw", "es_1", "the physical ceiling: raw sqlite3 fact rows over eventsourcing's "
         "single-event rate", None),
    ]
    for num, den, text, target in wanted:
        if num in names and den in names:
            res.findings.append(ratio(samples, num, den, text, target))
    res.findings.extend(await _cpu_breakdown(ctx, res, p.facts))
    res.findings.extend(await _cpu_concurrent(ctx, res, p.facts))
    if _on_loop_supported():
        res.findings.extend(await _cpu_breakdown(ctx, res, p.facts, on_loop=True))
        res.findings.extend(await _cpu_concurrent(ctx, res, p.facts, on_loop=True))
    return res


SCENARIOS = [Scenario("facts", "fact recording through LiveIo vs raw sqlite3 and peers", facts)]
