"""Loop lag: how late a 1 ms ticker task wakes while 100 tasks append (``SqliteStore``, full).

An application embedding the store runs its UI or network code on the same event loop, so the
store must never hold the loop for the length of a commit. The ticker sleeps 1 ms at a time
and records how late each wake-up comes; the reference side is the same ticker on an idle
loop (what the timer itself costs on this machine). Each append task writes its own run.

On the harness's disk the fsync is short; to see a slow disk (an SD card, a laptop SSD under
load) run the module on its own with ``--slow-fsync``: it re-runs itself under ``strace``,
which delays every ``fdatasync``/``fsync`` (SQLite uses ``fdatasync`` on Linux) by 10 ms::

    python3 -m benchmarks --only loop_lag
    python3 -m benchmarks.scenarios.loop_lag              # plain disk, standalone
    python3 -m benchmarks.scenarios.loop_lag --slow-fsync # every fsync 10 ms longer

Standalone, ``--commit-on-loop auto|on|off`` picks the store's ``commit_on_loop`` (None, the
adaptive default; True; False).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from mfm_store.events import EventEnvelope
from mfm_store.ids import RunId
from mfm_store.sqlite import SqliteStore

from ..context import Context
from ..harness import Finding, Sample, Side, Target, percentile
from ..results import ScenarioResult
from ..workload import envelopes
from ._base import Scenario

__all__ = ["SCENARIOS", "lag_round"]

TICK = 0.001  # the ticker's sleep, seconds
TASKS = 100
_MS = " ms"


class _RunQueueWait:
    """Time the calling thread has spent waiting for a CPU, from Linux's schedstat (0 where
    that file is missing)."""

    def __init__(self) -> None:
        try:
            self._fd: int | None = os.open(
                f"/proc/self/task/{threading.get_native_id()}/schedstat", os.O_RDONLY)
        except OSError:
            self._fd = None

    def seconds(self) -> float:
        if self._fd is None:
            return 0.0
        return int(os.pread(self._fd, 100, 0).split()[1]) / 1e9

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)


async def _ticker(stop: asyncio.Event, lags: list[float], own: list[float]) -> None:
    """Record every wake-up's lag in ``lags``, and in ``own`` the lag less the time the loop's
    thread waited for a CPU meanwhile: on a machine shared with other work, that is the lag
    this process caused itself (its callbacks, the GIL, blocking calls)."""
    waited = _RunQueueWait()
    try:
        while not stop.is_set():
            before = waited.seconds()
            due = time.perf_counter() + TICK
            await asyncio.sleep(TICK)
            lag = max(0.0, time.perf_counter() - due)
            lags.append(lag)
            own.append(max(0.0, lag - (waited.seconds() - before)))
    finally:
        waited.close()


async def lag_round(store: SqliteStore | None, tasks: int, per_task: int,
                    idle_seconds: float = 0.0) -> Sample:
    """One round: the ticker runs while ``tasks`` tasks append ``per_task`` events each (or,
    without a store, while the loop idles ``idle_seconds``). ``extra`` holds the lag's p50,
    p99 and max in ms; ``ops`` counts appends (ticks on an idle loop)."""
    lags: list[float] = []
    own: list[float] = []
    stop = asyncio.Event()
    ticker = asyncio.create_task(_ticker(stop, lags, own))
    await asyncio.sleep(TICK)  # the ticker is running
    plans = [envelopes(RunId.new(), 0, per_task) for _ in range(tasks)]

    async def append_all(envs: list[EventEnvelope]) -> None:
        assert store is not None
        for env in envs:
            await store.append(env.run_id, env.seq - 1, (env,))

    start = time.perf_counter()
    if store is None:
        await asyncio.sleep(idle_seconds)
    else:
        await asyncio.gather(*(append_all(p) for p in plans))
    seconds = time.perf_counter() - start
    stop.set()
    await ticker
    ms = [x * 1000 for x in lags] or [0.0]
    own_ms = [x * 1000 for x in own] or [0.0]
    extra = {"lag_p50_ms": percentile(ms, 50), "lag_p99_ms": percentile(ms, 99),
             "lag_max_ms": max(ms), "ticks": float(len(lags)),
             "own_p50_ms": percentile(own_ms, 50), "own_p99_ms": percentile(own_ms, 99),
             "own_max_ms": max(own_ms)}
    return Sample(tasks * per_task if store is not None else len(lags), seconds, (), extra)


def _lag_finding(samples: dict[str, list[Sample]], side: str, key: str, description: str,
                 target: Target | None = None) -> Finding:
    return Finding(f"{key} ({side})", description, tuple(s.extra[key] for s in samples[side]),
                   _MS, target)


async def loop_lag(ctx: Context) -> ScenarioResult:
    p = ctx.profile
    per_task = max(1, p.concurrent_appends // TASKS)
    idle = 0.05 if p.name == "smoke" else 0.5
    res = ScenarioResult(
        "loop_lag", "Event-loop lag while 100 tasks append (full)",
        f"A task sleeps {TICK * 1000:g} ms at a time and records how late it wakes, while "
        f"{TASKS} tasks append {per_task} one-event appends each to their own runs "
        f"(SqliteStore, durability full); idle = the same ticker on an idle loop for {idle} s. "
        "For a slow disk: python3 -m benchmarks.scenarios.loop_lag --slow-fsync (10 ms per "
        "fsync).")
    store = await SqliteStore.open(ctx.path("loop_lag"))
    try:
        async def ours(_r: int) -> Sample:
            return await lag_round(store, TASKS, per_task)

        async def idle_side(_r: int) -> Sample:
            return await lag_round(None, 0, 0, idle)

        sides = [Side("ours", f"{TASKS} appending tasks, full", "appends", ours),
                 Side("idle", "ticker alone", "ticks", idle_side)]
        samples = await ctx.measure(sides)
    finally:
        await store.close()
    res.add_sides(sides, samples)
    res.findings += [
        _lag_finding(samples, "ours", "lag_p99_ms", "p99 of how late the ticker wakes",
                     Target("<=", 1.0, _MS)),
        _lag_finding(samples, "ours", "own_p99_ms",
                     "p99 lag less the time the loop's thread waited for a CPU",
                     Target("<=", 1.0, _MS)),
        _lag_finding(samples, "ours", "lag_p50_ms", "median lag"),
        _lag_finding(samples, "ours", "lag_max_ms", "longest lag"),
        _lag_finding(samples, "idle", "lag_p99_ms", "p99 lag of the ticker on an idle loop"),
    ]
    return res


SCENARIOS = [Scenario("loop_lag", "event-loop lag while 100 tasks append", loop_lag)]


# standalone: plain disk or slowed fsync


_MODES: dict[str, bool | None] = {"auto": None, "on": True, "off": False}


async def _standalone(folder: Path, appends: int, rounds: int,
                      commit_on_loop: bool | None = None) -> list[dict[str, float]]:
    out = []
    for r in range(rounds):
        path = folder / f"loop_lag_{r}.db"
        async with SqliteStore.open(path, commit_on_loop=commit_on_loop) as store:
            s = await lag_round(store, TASKS, max(1, appends // TASKS))
        idle = await lag_round(None, 0, 0, 0.3)
        out.append({**s.extra, "appends_per_s": s.rate, "idle_p99_ms": idle.extra["lag_p99_ms"],
                    "idle_own_p99_ms": idle.extra["own_p99_ms"]})
    return out


def _print(rows: list[dict[str, float]], title: str) -> None:
    print(title)
    print("lag = how late the 1 ms ticker woke; own = the same less the time its thread "
          "waited for a CPU (other processes' load)")
    print(f"{'round':>5} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'own p50':>8} "
          f"{'own p99':>8} {'own max':>8} {'appends/s':>10} {'idle p99':>8} {'own':>6}")
    for i, row in enumerate(rows):
        print(f"{i:>5} {row['lag_p50_ms']:>8.3f} {row['lag_p99_ms']:>8.3f} "
              f"{row['lag_max_ms']:>8.2f} {row['own_p50_ms']:>8.3f} {row['own_p99_ms']:>8.3f} "
              f"{row['own_max_ms']:>8.2f} {row['appends_per_s']:>10.0f} "
              f"{row['idle_p99_ms']:>8.3f} {row['idle_own_p99_ms']:>6.3f}")
    for key in ("lag_p50_ms", "lag_p99_ms", "lag_max_ms", "own_p50_ms", "own_p99_ms",
                "own_max_ms"):
        values = sorted(row[key] for row in rows)
        print(f"median {key}: {values[len(values) // 2]:.3f}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python3 -m benchmarks.scenarios.loop_lag",
                                 description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--slow-fsync", action="store_true",
                    help="run under strace, every fdatasync/fsync delayed by 10 ms")
    ap.add_argument("--appends", type=int, default=3000, help="appends per round (all tasks)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--dir", type=Path, help="folder for the files (default: a temporary one)")
    ap.add_argument("--commit-on-loop", choices=list(_MODES), default="auto",
                    help="the store's commit_on_loop: auto (None), on (True), off (False)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.slow_fsync and not args.child:
        strace = shutil.which("strace") or "/usr/bin/strace"
        cmd = [strace, "-f", "-qq", "--seccomp-bpf", "-e", "trace=fdatasync,fsync",
               "-e", "inject=fdatasync,fsync:delay_exit=10000", "-o", os.devnull,
               sys.executable, "-m", "benchmarks.scenarios.loop_lag", "--child",
               "--slow-fsync", "--appends", str(args.appends), "--rounds", str(args.rounds),
               "--commit-on-loop", args.commit_on_loop]
        if args.dir is not None:
            cmd += ["--dir", str(args.dir)]
        return subprocess.run(cmd, check=False).returncode
    title = (f"loop lag, {TASKS} tasks, {args.appends} appends per round, full, "
             + ("fsync +10 ms (strace)" if args.slow_fsync else "plain disk")
             + f", commit_on_loop {args.commit_on_loop}")
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        rows = asyncio.run(_standalone(Path(tmp), args.appends, args.rounds,
                                       _MODES[args.commit_on_loop]))
    _print(rows, title)
    return 0


if __name__ == "__main__":
    sys.exit(main())
