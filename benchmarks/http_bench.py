"""What recording an HTTP call costs: a durable recorded call against a bare httpx call.

Both sides ask the same local server (a minimal asyncio HTTP/1.1 server on 127.0.0.1, in a
process of its own, so that serving costs little and does not share this process's interpreter
lock) for the same JSON answer, with floats. The bare side is ``httpx.AsyncClient.get`` +
``.json()``; the recorded side is ``Http(io).get(url, key=...)`` through ``LiveIo`` and
``HttpTransportFactory`` on a ``SqliteStore`` with ``durability="full"`` (each new fact is its
payload, binding and event in one commit, concurrent calls committed together). Rounds
alternate the sides (order rotated); each round gives a ratio and an added time per call, the
report gives the medians and spreads. Also measured: one durable commit of a tiny fact alone
(``record_fact``), the "one fsync's worth" the issue's goal refers to.

Run from the repository root::

    python -m benchmarks.http_bench               # about 30 s
    python -m benchmarks.http_bench --rounds 3 --calls 50 --json /tmp/http.json
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from mfm_store import FactIndex, LiveIo, LiveIoEnv, RunId, StoreFactRecorder
from mfm_store.http import Http, HttpTransportFactory
from mfm_store.sqlite import SqliteStore

STATE = "bench.main.http"
DEFAULT_WORKDIR = Path(__file__).resolve().parent / "results"
_BODY = b'{"symbol": "ACME", "price": 41.07, "currency": "USD", "rate": 0.912345}'
_RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
             % len(_BODY)) + _BODY


async def _connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:" and int(line[15:]):
                    await reader.readexactly(int(line[15:]))
            writer.write(_RESPONSE)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def _serve() -> None:
    """Answer every request with ``_BODY`` until stdin closes; print the base URL first."""
    server = await asyncio.start_server(_connection, "127.0.0.1", 0)
    host, port = server.sockets[0].getsockname()[:2]
    print(f"http://{host}:{port}", flush=True)
    await asyncio.to_thread(sys.stdin.read)
    server.close()


async def _bare(client: httpx.AsyncClient, url: str, tasks: int,
                per_task: int) -> tuple[float, float]:
    async def worker(t: int) -> None:
        for i in range(per_task):
            resp = await client.get(url, params={"symbol": f"S{t}x{i}"})
            resp.json()

    start, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker(t) for t in range(tasks)))
    return time.perf_counter() - start, time.process_time() - cpu


async def _recorded(store: SqliteStore, factory: HttpTransportFactory, url: str, tasks: int,
                    per_task: int) -> tuple[float, float]:
    run = RunId.new()
    facts = FactIndex()
    recorder = StoreFactRecorder(store, run)

    async def worker(t: int) -> None:
        io = LiveIo(run, STATE, 0, store, facts, recorder,
                    factory.make(LiveIoEnv(store, run, STATE, 0)))
        http = Http(io)
        for i in range(per_task):
            resp = await http.get(url, key=f"q|{t}|{i}", params={"symbol": f"S{t}x{i}"})
            resp.json()

    start, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker(t) for t in range(tasks)))
    return time.perf_counter() - start, time.process_time() - cpu


async def _commit(store: SqliteStore, n: int) -> float:
    run = RunId.new()
    start = time.perf_counter()
    for i in range(n):
        await store.record_fact(run, f"k{i}", b'{"n":%d}' % i)
    return (time.perf_counter() - start) / n


async def measure(rounds: int, calls: int, workdir: Path) -> dict[str, Any]:
    """Per task count: per-round ``bare`` and ``recorded`` seconds per call, ratio, added."""
    workdir.mkdir(parents=True, exist_ok=True)
    out: dict[str, Any] = {"rounds": rounds, "calls": calls, "cases": {}}
    server = subprocess.Popen([sys.executable, "-m", "benchmarks.http_bench", "--serve"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None and server.stdin is not None
    try:
        with tempfile.TemporaryDirectory(dir=workdir) as tmp:
            url = f"{server.stdout.readline().strip()}/market/quote"
            await _rounds(out, url, Path(tmp), rounds, calls)
    finally:
        server.stdin.close()
        server.wait(timeout=30)
    return out


async def _rounds(out: dict[str, Any], url: str, tmp: Path, rounds: int, calls: int) -> None:
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    async with SqliteStore.open(tmp / "http.db", durability="full") as store, \
            httpx.AsyncClient(limits=limits) as client, \
            HttpTransportFactory(client=client) as factory:
        commit = [await _commit(store, 50) for _ in range(rounds)]
        out["durable_commit_ms"] = statistics.median(commit) * 1000
        for tasks in (1, 100):
            per_task = max(1, calls // tasks) if tasks == 1 else max(1, calls * 2 // tasks)
            n = tasks * per_task
            await _bare(client, url, tasks, per_task)  # warm-up: connections, caches
            await _recorded(store, factory, url, tasks, per_task)
            rows = []
            for r in range(rounds):
                sides: dict[str, float] = {}
                order = ("bare", "recorded") if r % 2 == 0 else ("recorded", "bare")
                for side in order:
                    gc.collect()
                    if side == "bare":
                        wall, cpu = await _bare(client, url, tasks, per_task)
                    else:
                        wall, cpu = await _recorded(store, factory, url, tasks, per_task)
                    sides[side], sides[side + "_cpu"] = wall / n, cpu / n
                rows.append({**sides, "ratio": sides["recorded"] / sides["bare"],
                             "added_ms": (sides["recorded"] - sides["bare"]) * 1000,
                             "added_cpu_ms": (sides["recorded_cpu"] - sides["bare_cpu"]) * 1000})
            out["cases"][str(tasks)] = {"tasks": tasks, "calls_per_round": n,
                                        "rounds": rows}


def _median(rows: list[dict[str, float]], field: str) -> float:
    return statistics.median(r[field] for r in rows)


def summary(result: dict[str, Any]) -> str:
    lines = ["| tasks | bare ms/call (CPU) | recorded ms/call (CPU) | ratio (median, min-max) "
             "| added ms/call | added CPU ms/call |", "|---:|---:|---:|---|---:|---:|"]
    for case in result["cases"].values():
        rows = case["rounds"]
        ratios = [r["ratio"] for r in rows]
        lines.append(
            f"| {case['tasks']} | {_median(rows, 'bare') * 1000:.3f} "
            f"({_median(rows, 'bare_cpu') * 1000:.3f}) "
            f"| {_median(rows, 'recorded') * 1000:.3f} "
            f"({_median(rows, 'recorded_cpu') * 1000:.3f}) "
            f"| {statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f}) "
            f"| {_median(rows, 'added_ms'):.3f} | {_median(rows, 'added_cpu_ms'):.3f} |")
    lines.append(f"\nOne durable commit of a tiny fact alone (record_fact, full): "
                 f"{result['durable_commit_ms']:.3f} ms")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.http_bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--calls", type=int, default=200,
                   help="calls per round at 1 task (twice as many at 100 tasks)")
    p.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR,
                   help="folder on the disk to measure (a tmpfs makes fsync free)")
    p.add_argument("--json", type=Path, help="also write every round here")
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve:
        asyncio.run(_serve())
        return
    result = asyncio.run(measure(args.rounds, args.calls, args.workdir))
    print(summary(result))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
