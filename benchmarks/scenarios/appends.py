"""Appending events: one at a time, from many tasks, in bulk, and at both durabilities."""

from __future__ import annotations

from contextlib import AsyncExitStack

from mfm_store.ids import RunId
from mfm_store.sqlite import Durability, SqliteStore

from ..context import Context
from ..harness import Finding, Sample, Side, Stopwatch, Target
from ..raw import RawDb, event_rows
from ..results import ScenarioResult
from ..workload import envelopes
from ._base import Scenario, ratio
from ._sides import concurrent_appends, raw_sequential_appends, sequential_appends

__all__ = ["SCENARIOS"]

_TURNS = 4  # append_concurrent: turns per round, alternating between the task counts


async def _open(stack: AsyncExitStack, ctx: Context, name: str,
                durability: Durability = "full") -> SqliteStore:
    store = await SqliteStore.open(ctx.path(name), durability=durability)
    stack.push_async_callback(store.close)
    return store


def _raw(stack: AsyncExitStack, ctx: Context, name: str, durability: str = "full") -> RawDb:
    raw = RawDb(ctx.path(name), durability)
    stack.callback(raw.close)
    return raw


async def append_seq(ctx: Context) -> ScenarioResult:
    p = ctx.profile
    res = ScenarioResult(
        "append_seq", "Sequential durable appends (1 event per append, full)",
        f"{p.seq_appends} appends of one ~90-byte event per round, each awaited before the "
        "next, on a fresh run; raw = the same rows, BEGIN IMMEDIATE ... COMMIT per event. Each "
        "comparison is a pair of sides taking turns one append at a time, each append timed on "
        "its own (ours_2 is our store again, paired with raw_check).")
    async with AsyncExitStack() as stack:
        pairs = [
            [sequential_appends("ours", "SqliteStore.append, full",
                                await _open(stack, ctx, "ours"), p.seq_appends),
             raw_sequential_appends("raw", "sqlite3, same rows, full", _raw(stack, ctx, "raw"),
                                    p.seq_appends)],
            [sequential_appends("ours_2", "SqliteStore.append, full (paired with raw_check)",
                                await _open(stack, ctx, "ours_2"), p.seq_appends),
             raw_sequential_appends("raw_check", "sqlite3, same rows + head SELECT, full",
                                    _raw(stack, ctx, "raw_check"), p.seq_appends,
                                    check_head=True)],
        ]
        samples = {}
        for pair in pairs:  # a third side in the turns would slow the other two unevenly
            samples.update(await ctx.measure_alternating(pair))
    res.add_sides([side for pair in pairs for side in pair], samples)
    res.findings.append(ratio(samples, "ours", "raw", "appends/s, ours over raw sqlite3",
                              Target(">=", 0.85)))
    res.findings.append(ratio(samples, "ours_2", "raw_check",
                              "ours over raw sqlite3 that also reads the head first, as an "
                              "optimistic-concurrency check may"))
    return res


async def append_concurrent(ctx: Context) -> ScenarioResult:
    p = ctx.profile
    res = ScenarioResult(
        "append_concurrent", "Concurrent appenders (group commit, full)",
        f"N asyncio tasks, each appending one event at a time to its own run, "
        f"{p.concurrent_appends} appends per round in total, made in {_TURNS} turns that "
        "alternate between the task counts (each turn starts the tasks afresh); each task "
        "count writes its own file, so no side pays for another's checkpoints; latency is "
        "per append.")
    async with AsyncExitStack() as stack:
        sides = [concurrent_appends(f"ours_c{n}", f"{n} task(s), full",
                                    await _open(stack, ctx, f"ours_c{n}"), n,
                                    p.concurrent_appends, _TURNS) for n in p.concurrency]
        samples = await ctx.measure_alternating(sides)
    res.add_sides(sides, samples)
    base = f"ours_c{p.concurrency[0]}"
    for n in p.concurrency[1:]:
        target = Target(">=", 5) if n == 100 else None
        res.findings.append(ratio(samples, f"ours_c{n}", base,
                                  f"{n} concurrent appenders over one", target))
    return res


async def append_bulk(ctx: Context) -> ScenarioResult:
    p = ctx.profile
    size = p.bulk_batch_size
    res = ScenarioResult(
        "append_bulk", f"Bulk append ({size}-event batches, full)",
        f"{p.bulk_batches} appends of {size} events per round on a fresh run; raw = executemany "
        "of the pre-encoded rows plus the head update, one transaction per batch.")

    async with AsyncExitStack() as stack:
        store = await _open(stack, ctx, "ours")
        raw = _raw(stack, ctx, "raw")

        async def ours(_r: int) -> Sample:
            run_id = RunId.new()
            envs = envelopes(run_id, 0, p.bulk_batches * size)
            batches = [envs[i:i + size] for i in range(0, len(envs), size)]
            sw = Stopwatch()
            with sw.timing():
                for b in batches:
                    await store.append(run_id, b[0].seq - 1, b)
            return sw.sample(len(envs))

        async def raw_side(_r: int) -> Sample:
            run_id = RunId.new()
            rows = event_rows(envelopes(run_id, 0, p.bulk_batches * size))
            batches = [rows[i:i + size] for i in range(0, len(rows), size)]
            pk = raw.new_run(str(run_id))
            sw = Stopwatch()
            with sw.timing():
                for b in batches:
                    raw.append(pk, b)
            return sw.sample(len(rows))

        sides = [Side("ours", "SqliteStore.append, encodes events", "events", ours),
                 Side("raw", "sqlite3 executemany, pre-encoded rows", "events", raw_side)]
        samples = await ctx.measure(sides)
    res.add_sides(sides, samples)
    res.findings.append(ratio(samples, "ours", "raw", "events/s, ours over raw sqlite3",
                              Target(">=", 0.5)))
    return res


async def durability(ctx: Context) -> ScenarioResult:
    p = ctx.profile
    res = ScenarioResult(
        "durability", "Durability: full vs normal (sequential single-event appends)",
        "full = WAL + synchronous=FULL (fsync per commit, survives power loss); normal = WAL + "
        "synchronous=NORMAL (survives a process crash). Same workload as append_seq.")
    async with AsyncExitStack() as stack:
        sides = []
        samples = {}
        modes: tuple[Durability, ...] = ("full", "normal")
        for d in modes:
            pair = [sequential_appends(f"ours_{d}", f"SqliteStore, {d}",
                                       await _open(stack, ctx, f"ours_{d}", d), p.seq_appends),
                    raw_sequential_appends(f"raw_{d}", f"sqlite3, {d}",
                                           _raw(stack, ctx, f"raw_{d}", d), p.seq_appends)]
            # Each level alternates on its own: an operation runs slower after a commit that
            # waited for fsync than after one that did not, so levels are never interleaved.
            samples.update(await ctx.measure_alternating(pair))
            sides += pair
    res.add_sides(sides, samples)
    findings: list[Finding] = [
        ratio(samples, "ours_full", "raw_full", "ours over raw, full", Target(">=", 0.85)),
        ratio(samples, "ours_normal", "raw_normal", "ours over raw, normal"),
        ratio(samples, "ours_normal", "ours_full", "what dropping fsync per commit buys us"),
        ratio(samples, "raw_normal", "raw_full", "what it buys raw sqlite3"),
    ]
    res.findings.extend(findings)
    return res


SCENARIOS = [
    Scenario("append_seq", "sequential durable appends", append_seq),
    Scenario("append_concurrent", "concurrent appenders, p50/p99", append_concurrent),
    Scenario("append_bulk", "bulk append of 1000-event batches", append_bulk),
    Scenario("durability", "full vs normal durability", durability),
]
