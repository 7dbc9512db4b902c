"""Side builders shared by scenarios: sequential appends (ours and raw, as steppers) and
concurrent appends."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable

from mfm_store.events import EventEnvelope
from mfm_store.ids import RunId
from mfm_store.sqlite import SqliteStore

from ..harness import Stepper, Turns
from ..raw import RawDb, event_rows
from ..workload import envelopes

__all__ = ["concurrent_appends", "raw_sequential_appends", "sequential_appends"]


def sequential_appends(name: str, label: str, store: SqliteStore, n: int) -> Stepper:
    """``n`` appends of one event each, awaited one after the other, on a fresh run; each
    append is one step (see :func:`~benchmarks.harness.run_alternating`)."""

    async def prepare(_r: int) -> Turns:
        run_id = RunId.new()
        envs = envelopes(run_id, 0, n)

        def step(i: int) -> Awaitable[int]:
            return store.append(run_id, i, (envs[i],))

        return Turns(n, step, n)

    return Stepper(name, label, "appends", prepare)


def raw_sequential_appends(name: str, label: str, raw: RawDb, n: int, *,
                           check_head: bool = False) -> Stepper:
    """The same rows through plain ``sqlite3``: one transaction per event (``check_head``:
    reading the run's head first in each transaction, as the store does)."""

    async def prepare(_r: int) -> Turns:
        run_id = RunId.new()
        rows = event_rows(envelopes(run_id, 0, n))
        pk = raw.new_run(str(run_id))
        check = str(run_id) if check_head else None

        def step(i: int) -> None:
            raw.append(pk, (rows[i],), check)

        return Turns(n, step, n)

    return Stepper(name, label, "appends", prepare)


def concurrent_appends(name: str, label: str, store: SqliteStore, tasks: int, total: int,
                       steps: int) -> Stepper:
    """``tasks`` asyncio tasks, each appending one event at a time to its own run, ``total``
    appends per round in ``steps`` turns (each task makes its share of appends in every turn).

    Every append's latency is recorded; the rate is all appends over the time of the turns.
    """
    per_task = max(steps, total // tasks)
    share = per_task // steps

    async def worker(envs: list[EventEnvelope], lat: list[float]) -> None:
        for env in envs:
            start = time.perf_counter()
            await store.append(env.run_id, env.seq - 1, (env,))
            lat.append(time.perf_counter() - start)

    async def prepare(_r: int) -> Turns:
        plans = [envelopes(RunId.new(), 0, share * steps) for _ in range(tasks)]
        lat: list[float] = []

        def step(i: int) -> Awaitable[object]:
            return asyncio.gather(*(worker(envs[i * share:(i + 1) * share], lat)
                                    for envs in plans))

        return Turns(steps, step, share * steps * tasks, lat)

    return Stepper(name, label, "appends", prepare)
