"""Follow benchmark: ``python -m benchmarks.follow_bench [--events 300] [--idle 10]``.

Runs on its own, on one SQLite file (``durability="normal"``: the commit itself is not what
is measured):

- ``latency_in_process``: a writer task appends one event every ~``--gap`` ms; a follower of
  every run in the same process (woken by the writer's commit hook) records when each arrives;
  commit-to-delivery = arrival minus the moment ``append`` returned (median, p99, max);
- ``latency_cross_process``: the same with the writer in another process (the follower
  notices through ``PRAGMA data_version`` polling); times are ``CLOCK_REALTIME`` of one
  machine;
- ``idle_cpu``: CPU time used by 1 and by 10 follower processes of an idle file over
  ``--idle`` seconds, as a share of one core.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mfm_store import DomainEvent, EventEnvelope, RunId
from mfm_store.sqlite import SqliteStore


async def _write(path: Path, events: int, gap_ms: float, stamps: dict[int, int]) -> None:
    rng = random.Random(7)
    async with SqliteStore.open(path, durability="normal") as store:
        run = RunId.new()
        for seq in range(1, events + 1):
            await asyncio.sleep(rng.uniform(0.5, 1.5) * gap_ms / 1000)
            await store.append(run, seq - 1, [EventEnvelope(run, seq, None,
                                                            DomainEvent("tick", {"i": seq}))])
            stamps[seq] = time.time_ns()


async def _follow(path: Path, events: int, arrivals: dict[int, int],
                  ready: asyncio.Event | None = None) -> None:
    async with SqliteStore.open(path, durability="normal") as store, \
            store.follow(after="end") as follower:
        if ready is not None:
            ready.set()
        else:
            print("ready", flush=True)
        async for env in follower:
            arrivals[env.seq] = time.time_ns()
            if len(arrivals) == events:
                return


def _summary(stamps: dict[int, int], arrivals: dict[int, int]) -> dict[str, float]:
    lat = sorted((arrivals[s] - stamps[s]) / 1e6 for s in stamps if s in arrivals)
    return {"n": len(lat), "median_ms": round(statistics.median(lat), 3),
            "p99_ms": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))], 3),
            "max_ms": round(lat[-1], 3)}


async def in_process(path: Path, events: int, gap_ms: float) -> dict[str, float]:
    stamps: dict[int, int] = {}
    arrivals: dict[int, int] = {}
    ready = asyncio.Event()
    async with SqliteStore.open(path, durability="normal"):
        pass
    follower = asyncio.create_task(_follow(path, events, arrivals, ready))
    await ready.wait()
    # the writer shares the follower's store here, so that its commit hook wakes it
    rng = random.Random(7)
    arrivals2: dict[int, int] = {}
    async with SqliteStore.open(path, durability="normal") as store, \
            store.follow(after="end") as f2:

        async def consume() -> None:
            async for env in f2:
                arrivals2[env.seq] = time.time_ns()
                if len(arrivals2) == events:
                    return

        task = asyncio.create_task(consume())
        run = RunId.new()
        for seq in range(1, events + 1):
            await asyncio.sleep(rng.uniform(0.5, 1.5) * gap_ms / 1000)
            await store.append(run, seq - 1, [EventEnvelope(
                run, seq, None, DomainEvent("tick", {"i": seq}))])
            stamps[seq] = time.time_ns()
        await asyncio.wait_for(task, 60)
    await asyncio.wait_for(follower, 60)
    return {**_summary(stamps, arrivals2), "other_store_same_process": _summary(stamps, arrivals)}


def _child(args: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "benchmarks.follow_bench", *args],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


async def cross_process(path: Path, events: int, gap_ms: float) -> dict[str, float]:
    arrivals: dict[int, int] = {}
    ready = asyncio.Event()
    follower = asyncio.create_task(_follow(path, events, arrivals, ready))
    await ready.wait()
    writer = _child(["--child-write", str(path), str(events), str(gap_ms)])
    out, _ = await asyncio.to_thread(writer.communicate)
    stamps = {int(k): v for k, v in json.loads(out).items()}
    await asyncio.wait_for(follower, 60)
    return _summary(stamps, arrivals)


def idle_cpu(path: Path, followers: int, seconds: float) -> dict[str, float]:
    children = [_child(["--child-idle", str(path), str(seconds)]) for _ in range(followers)]
    used = 0.0
    for child in children:
        out, _ = child.communicate()
        used += float(out.split()[-1])
    return {"followers": followers, "seconds": seconds, "cpu_seconds": round(used, 4),
            "share_of_a_core_pct": round(100 * used / seconds, 3)}


async def _idle_child(path: Path, seconds: float) -> None:
    async with SqliteStore.open(path, durability="normal") as store, \
            store.follow(after="end") as follower:
        task = asyncio.create_task(anext(follower, None))
        await asyncio.sleep(1.0)  # the interval has grown to its idle value
        start = time.process_time()
        await asyncio.sleep(seconds)
        used = time.process_time() - start
        await follower.aclose()
        await task
    print(used, flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=300)
    p.add_argument("--gap", type=float, default=20.0, help="ms between appends (mean)")
    p.add_argument("--idle", type=float, default=10.0, help="seconds of idle measurement")
    p.add_argument("--child-write", nargs=3, help=argparse.SUPPRESS)
    p.add_argument("--child-idle", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child_write:
        stamps: dict[int, int] = {}
        path, n, gap = args.child_write
        asyncio.run(_write(Path(path), int(n), float(gap), stamps))
        print(json.dumps(stamps))
        return
    if args.child_idle:
        asyncio.run(_idle_child(Path(args.child_idle[0]), float(args.child_idle[1])))
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "follow.db"
        results = {
            "latency_in_process": asyncio.run(in_process(path, args.events, args.gap)),
            "latency_cross_process": asyncio.run(cross_process(path, args.events, args.gap)),
            "idle_cpu_1": idle_cpu(path, 1, args.idle),
            "idle_cpu_10": idle_cpu(path, 10, args.idle),
        }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
