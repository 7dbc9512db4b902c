"""Server time of the web inspector's heaviest pages (issue 20; goal: under 200 ms each).

``python -m benchmarks.ui_bench`` builds, in a temporary folder, a file of 50,000 runs and a file
holding one 10,000-event run (2,000 states, each with 3 facts and a new context), then times
the ASGI application answering a request in process (no socket, no browser: the server's
own time, from the request to the last byte of the body):

- runs page: the first request of a new inspector (it loads ``list_runs()`` once) and later
  ones (pages cut from the loaded list), with and without a filter;
- run page: the first request (reads the 10k events, builds the timeline, reads the facts
  and contexts of the first page) and later ones (the run is cached until its head moves).

Options: ``--runs N``, ``--states N`` (events = 5 x states + 1), ``--repeat N``, ``--json PATH``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mfm_store import ArtifactKind, DomainEvent, EventEnvelope, RunId
from mfm_store.events import RunCompleted, RunStarted, RunStatus, StateCompleted, StateEntered
from mfm_store.sqlite import SqliteStore
from mfm_store.ui import InspectorApp, create_app

HOST = "127.0.0.1:8765"
GOAL_MS = 200.0


async def build_many_runs(path: Path, runs: int) -> None:
    """``runs`` runs of two events each (5 ops; a fifth of them completed)."""
    async with SqliteStore.open(path, durability="normal") as store:
        manifest = await store.put(ArtifactKind.MANIFEST, b'{"op_id":"bench"}')

        async def one(i: int) -> None:
            run = RunId.new()
            events: list[Any] = [RunStarted(f"op{i % 5}", manifest, manifest),
                                 DomainEvent("tick", {"i": i})]
            if i % 5 == 0:
                events.append(RunCompleted(RunStatus.COMPLETED, manifest))
            await store.append(run, 0, [EventEnvelope(run, k + 1, None, e)
                                        for k, e in enumerate(events)])

        for base in range(0, runs, 1000):
            await asyncio.gather(*(one(i) for i in range(base, min(base + 1000, runs))))


async def build_long_run(path: Path, states: int) -> RunId:
    """One run: RunStarted, then per state StateEntered, 3 facts, StateCompleted."""
    run = RunId.new()
    async with SqliteStore.open(path, durability="normal") as store:
        def ctx(i: int) -> bytes:
            return json.dumps({"step": i, "total": i * 7, "note": f"state {i}"},
                              separators=(",", ":"), sort_keys=True).encode()

        snaps = await asyncio.gather(*(store.put(ArtifactKind.CONTEXT_SNAPSHOT, ctx(i))
                                       for i in range(states + 1)))
        payloads = await asyncio.gather(*(
            store.put(ArtifactKind.FACT_PAYLOAD, json.dumps(
                {"status": 200, "body": {"price_cents": 1000 + n, "n": n}}).encode())
            for n in range(states * 3)))
        manifest = await store.put(ArtifactKind.MANIFEST, b'{"op_id":"long"}')
        events: list[Any] = [RunStarted("long", manifest, snaps[0])]
        for i in range(states):
            sid = f"long.main.s{i}"
            events.append(StateEntered(sid, 0, snaps[i]))
            for k in range(3):
                events.append(DomainEvent("fact_recorded", {
                    "key": f"http:get|{i}|{k}", "payload_id": payloads[i * 3 + k], "meta": {}}))
            events.append(StateCompleted(sid, snaps[i + 1]))
        head = 0
        for base in range(0, len(events), 1000):
            chunk = events[base:base + 1000]
            head = await store.append(run, head, [
                EventEnvelope(run, head + k + 1, None, e) for k, e in enumerate(chunk)])
    return run


async def request(app: InspectorApp, target: str) -> tuple[int, int]:
    """GET ``target`` through the ASGI app; returns (status, body bytes)."""
    path, _, query = target.partition("?")
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(),
             "root_path": "", "query_string": query.encode(),
             "headers": [(b"host", HOST.encode())], "client": ("127.0.0.1", 1),
             "server": ("127.0.0.1", 8765)}
    status = 0
    size = 0

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status, size
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            size += len(message.get("body", b""))

    await app(scope, receive, send)
    return status, size


async def timed(app: InspectorApp, target: str) -> tuple[float, int]:
    start = time.perf_counter()
    status, size = await request(app, target)
    elapsed = (time.perf_counter() - start) * 1000
    if status != 200:
        raise RuntimeError(f"{target}: HTTP {status}")
    return elapsed, size


async def measure(path: Path, targets: list[str], repeat: int,
                  ) -> list[dict[str, Any]]:
    """For each target: first request of a new app (median over ``repeat`` new apps), then
    the median of ``repeat`` later requests of one app."""
    out = []
    async with SqliteStore.open(path, read_only=True) as store:
        for target in targets:
            firsts, later, size = [], [], 0
            for _ in range(repeat):
                app = create_app(store, allowed_hosts={HOST})
                ms, size = await timed(app, target)
                firsts.append(ms)
                await app.aclose()
            app = create_app(store, allowed_hosts={HOST})
            await timed(app, target)
            for _ in range(repeat):
                later.append((await timed(app, target))[0])
            await app.aclose()
            out.append({"page": target, "first_ms": statistics.median(firsts),
                        "later_ms": statistics.median(later), "bytes": size})
    return out


async def reference(path: Path, run: RunId | None, repeat: int) -> dict[str, float]:
    """What the store's own calls cost on the same file, for scale: ``list_runs()``, or
    ``read_range()`` of the whole run."""
    times = []
    async with SqliteStore.open(path, read_only=True) as store:
        for _ in range(repeat):
            start = time.perf_counter()
            if run is None:
                await store.list_runs()
            else:
                await store.read_range(run)
            times.append((time.perf_counter() - start) * 1000)
    return {"call": "read_range(run)" if run else "list_runs()",
            "median_ms": statistics.median(times)}


def _table(title: str, rows: list[dict[str, Any]]) -> str:
    lines = [f"{title}", "", "| page | first request (ms) | later requests (ms) | HTML bytes |",
             "|---|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| `{r['page']}` | {r['first_ms']:.1f} | {r['later_ms']:.1f} | "
                     f"{r['bytes']:,} |")
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="ui-bench-") as tmp:
        folder = Path(tmp)
        step: Callable[[str], None] = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
        step(f"building {args.runs:,} runs ...")
        many = folder / "many.db"
        await build_many_runs(many, args.runs)
        step(f"building one run of {args.states * 5 + 1:,} events ...")
        long = folder / "long.db"
        run = await build_long_run(long, args.states)
        async with SqliteStore.open(many, read_only=True) as store:
            some = str((await store.list_runs())[len(await store.list_runs()) // 2].run_id)
        step("timing ...")
        runs_rows = await measure(many, [
            "/", "/?offset=25000", "/?status=completed", "/?op=op3&status=running",
            f"/?q={some[:6]}"], args.repeat)
        run_rows = await measure(long, [f"/runs/{run}", f"/runs/{run}?page=20",
                                        f"/runs/{run}/events?from=5001"], args.repeat)
        refs = [await reference(many, None, args.repeat),
                await reference(long, run, args.repeat)]
    return {"runs": args.runs, "events": args.states * 5 + 1, "runs_page": runs_rows,
            "run_page": run_rows, "reference": refs, "goal_ms": GOAL_MS}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.ui_bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=50_000)
    p.add_argument("--states", type=int, default=2_000)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--json", type=Path, help="also write the figures as JSON here")
    args = p.parse_args(argv)
    result = asyncio.run(main_async(args))
    print(_table(f"Runs page, {result['runs']:,} runs:", result["runs_page"]))
    print()
    print(_table(f"Run page, one run of {result['events']:,} events:", result["run_page"]))
    print()
    for ref in result["reference"]:
        print(f"for scale, the store's {ref['call']} alone: {ref['median_ms']:.1f} ms")
    print(f"goal: under {GOAL_MS:.0f} ms per page")
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
