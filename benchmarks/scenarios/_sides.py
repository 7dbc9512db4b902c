"""Side builders shared by scenarios: sequential appends (ours and raw, as steppers) and
concurrent appends."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable

from mfm_store.events import EventEnvelope
from mfm_store.ids import RunId
from mfm_store.sqlite import SqliteStore

from ..harness import Sample, Side, StepFn, Stepper, Stopwatch
from ..raw import RawDb, event_rows
from ..workload import envelopes

__all__ = ["concurrent_appends", "raw_sequential_appends", "sequential_appends"]


def sequential_appends(name: str, label: str, store: SqliteStore, n: int) -> Stepper:
    """``n`` appends of one event each, awaited one after the other, on a fresh run; each
    append is one step (see :func:`~benchmarks.harness.run_alternating`)."""

    async def prepare(_r: int) -> tuple[int, StepFn]:
        run_id = RunId.new()
        envs = envelopes(run_id, 0, n)

        def step(i: int) -> Awaitable[int]:
            return store.append(run_id, i, (envs[i],))

        return n, step

    return Stepper(name, label, "appends", prepare)


def raw_sequential_appends(name: str, label: str, raw: RawDb, n: int, *,
                           check_head: bool = False) -> Stepper:
    """The same rows through plain ``sqlite3``: one transaction per event (``check_head``:
    reading the run's head first in each transaction, as the store does)."""

    async def prepare(_r: int) -> tuple[int, StepFn]:
        run_id = RunId.new()
        rows = event_rows(envelopes(run_id, 0, n))
        pk = raw.new_run(str(run_id))
        check = str(run_id) if check_head else None

        def step(i: int) -> None:
            raw.append(pk, (rows[i],), check)

        return n, step

    return Stepper(name, label, "appends", prepare)


def concurrent_appends(name: str, label: str, store: SqliteStore, tasks: int,
                       total: int) -> Side:
    """``tasks`` asyncio tasks, each appending one event at a time to its own run.

    Every append's latency is recorded; the rate is all appends over the wall time.
    """
    per_task = max(1, total // tasks)

    async def worker(envs: list[EventEnvelope], lat: list[float]) -> None:
        for env in envs:
            start = time.perf_counter()
            await store.append(env.run_id, env.seq - 1, (env,))
            lat.append(time.perf_counter() - start)

    async def run(_r: int) -> Sample:
        plans = [envelopes(RunId.new(), 0, per_task) for _ in range(tasks)]
        lat: list[float] = []
        sw = Stopwatch()
        with sw.timing():
            await asyncio.gather(*(worker(envs, lat) for envs in plans))
        sw.latencies = lat
        return sw.sample(per_task * tasks, keep_latencies=True)

    return Side(name, label, "appends", run)
