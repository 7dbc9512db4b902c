"""Whole-file operations on large files: ``verify``, ``backup``, ``export``, ``list_runs``.

Run as ``python -m benchmarks.whole_file --events 100000,1000000,5000000``. For each size it
builds (once, cached under ``--cache``) a file of N events over N/100 runs written through the
store's own batched appends: per run a ``RunStarted``, 24 states (``StateEntered``, a
``fact_recorded`` binding a fresh payload, a small domain event, ``StateCompleted`` naming a
context snapshot, new every other state) and a ``RunCompleted``; so per 100 events 24 fact
bindings and about 37 artifacts. ``verify()`` must report ok on it.

Each operation then runs **in a fresh subprocess** (``--child``) that prints its time and its
peak resident set (``VmHWM`` from ``/proc/self/status``: interpreter and imports included;
``base_mb`` is the resident set just before the operation):

- ``verify``: ``SqliteStore.verify()`` (full ``PRAGMA integrity_check``) and ``verify_quick``;
- ``backup``: ``SqliteStore.backup()`` to a new file beside the cache (removed after);
- ``export``: the command line, ``mfm-store export --db FILE -o OUT`` (in the child process);
- ``list_runs_first``: the first page of 50 runs; ``list_runs_all``: every run, in pages of
  1000 when the store pages (else one ``list_runs()``).

Rates: ``rows/s`` counts runs, events, bindings and artifacts; ``events/s`` events alone; each
by wall-clock time and, in brackets, by the child's CPU time (all its threads: the figure to
compare on a shared, loaded machine, where wall-clock time mostly measures the others' load).
Results go to stdout as a Markdown table and to ``--out`` as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import inspect
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from mfm_store.events import (
    DomainEvent,
    EventEnvelope,
    RunCompleted,
    RunStarted,
    RunStatus,
    StateCompleted,
    StateEntered,
)
from mfm_store.ids import RunId
from mfm_store.sqlite import SqliteStore
from mfm_store.stores import ArtifactKind

from .stream_child import _peak_rss_mb, _status_mb

EVENTS_PER_RUN = 100
STATES = 24
_CONCURRENT_RUNS = 32
OPERATIONS = ("verify", "verify_quick", "backup", "export", "list_runs_first", "list_runs_all")


# building the file

def _json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def _aid(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _run(n: int, manifest: str) -> tuple[RunId, list[tuple[ArtifactKind, bytes]],
                                          list[EventEnvelope]]:
    """The artifacts and events of run number ``n``: exactly 100 events."""
    run = RunId.new()
    arts: list[tuple[ArtifactKind, bytes]] = []
    snap = _json({"run": n, "state": -1, "total": 0})
    arts.append((ArtifactKind.CONTEXT_SNAPSHOT, snap))
    events: list[Any] = [RunStarted("bench", manifest, _aid(snap)),
                         DomainEvent("op_boundary", {"phase": "start"})]
    for s in range(STATES):
        state = f"bench.main.s{s}"
        events.append(StateEntered(state, 0, _aid(snap)))
        payload = _json({"price": 1000 + n * 31 + s, "run": n, "source": "feed", "state": s})
        arts.append((ArtifactKind.FACT_PAYLOAD, payload))
        events.append(DomainEvent("fact_recorded", {
            "key": f"http:GET https://feed.example/price?s={s}", "payload_id": _aid(payload),
            "meta": {}}))
        events.append(DomainEvent("progress", {"state": s, "of": STATES}))
        if s % 2:
            snap = _json({"run": n, "state": s, "total": s * 7})
            arts.append((ArtifactKind.CONTEXT_SNAPSHOT, snap))
        events.append(StateCompleted(state, _aid(snap)))
    events.append(DomainEvent("op_boundary", {"phase": "end"}))
    events.append(RunCompleted(RunStatus.COMPLETED, _aid(snap)))
    assert len(events) == EVENTS_PER_RUN
    envs = [EventEnvelope(run, i, None, e) for i, e in enumerate(events, start=1)]
    return run, arts, envs


async def _write_run(store: SqliteStore, n: int, manifest: str) -> None:
    run, arts, envs = _run(n, manifest)
    await asyncio.gather(*(store.put(kind, data) for kind, data in arts))
    await store.append(run, 0, envs)


async def build(path: Path, events: int, *, quiet: bool = False) -> None:
    """Write ``events`` events (N/100 runs, with their bindings and artifacts) to ``path``."""
    runs = max(1, events // EVENTS_PER_RUN)
    async with SqliteStore.open(path, durability="normal") as store:
        manifest = await store.put(ArtifactKind.MANIFEST, _json({"plan": "bench", "v": 1}))
        done = 0
        while done < runs:
            batch = range(done, min(done + _CONCURRENT_RUNS, runs))
            await asyncio.gather(*(_write_run(store, n, manifest) for n in batch))
            done = batch.stop
            if not quiet and done % 5000 < _CONCURRENT_RUNS:
                print(f"  built {done}/{runs} runs", file=sys.stderr, flush=True)


def fixture(cache: Path, events: int) -> Path:
    """The cached file of ``events`` events (built once, atomically)."""
    path = cache / f"whole_file_{events}.db"
    if path.exists():
        return path
    cache.mkdir(parents=True, exist_ok=True)
    partial = cache / f".whole_file_{events}.{os.getpid()}.partial.db"
    for p in (partial, Path(f"{partial}-wal"), Path(f"{partial}-shm")):
        p.unlink(missing_ok=True)
    started = time.perf_counter()
    asyncio.run(build(partial, events))
    os.replace(partial, path)
    print(f"  built {path.name} in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return path


# one operation, in a child process

async def _child_op(op: str, path: Path, scratch: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if op == "export":
        from mfm_store.cli import main as cli_main

        dest = scratch / "export.jsonl"
        with contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):
            code = await asyncio.to_thread(cli_main, ["export", "--db", str(path), "-o",
                                                      str(dest)])
        out["exit"] = code
        out["bytes"] = dest.stat().st_size
        dest.unlink()
        return out
    async with SqliteStore.open(path, read_only=True) as store:
        if op in ("verify", "verify_quick"):
            report = await store.verify(quick=op == "verify_quick")
            out["ok"] = report.ok
            out["problems"] = [str(p) for p in report.problems[:5]]
        elif op == "backup":
            dest = scratch / "backup.db"
            await store.backup(dest)
            out["bytes"] = dest.stat().st_size
            dest.unlink()
        elif op == "list_runs_first":
            out["runs"] = len(await _list_page(store, None, 50))
        elif op == "list_runs_all":
            paged = "limit" in inspect.signature(store.list_runs).parameters
            out["paged"] = paged
            if not paged:
                out["runs"] = len(await store.list_runs())
            else:
                count, after = 0, None
                while True:
                    page = await _list_page(store, after, 1000)
                    count += len(page)
                    if len(page) < 1000:
                        break
                    after = page[-1].run_id
                out["runs"] = count
        else:
            raise SystemExit(f"unknown operation {op}")
    return out


async def _list_page(store: SqliteStore, after: RunId | None, limit: int) -> list[Any]:
    if "limit" in inspect.signature(store.list_runs).parameters:
        runs: list[Any] = await store.list_runs(after=after, limit=limit)  # type: ignore[call-arg]
        return runs
    return (await store.list_runs())[:limit]


def child(op: str, path: Path, scratch: Path) -> None:
    base = _status_mb("VmRSS") or 0.0
    started = time.perf_counter()
    cpu = time.process_time()
    out = asyncio.run(_child_op(op, path, scratch))
    out.update(seconds=time.perf_counter() - started, cpu_seconds=time.process_time() - cpu,
               peak_mb=_peak_rss_mb(), base_mb=base)
    print(json.dumps(out))


def measure(op: str, path: Path, scratch: Path) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-m", "benchmarks.whole_file", "--child", op,
                           str(path), str(scratch)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{op} on {path} failed:\n{proc.stderr}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def _counts(path: Path) -> dict[str, int]:
    async def go() -> dict[str, int]:
        async with SqliteStore.open(path, read_only=True) as store:
            return await store.stats()
    return asyncio.run(go())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.whole_file")
    parser.add_argument("--events", default="100000,1000000",
                        help="comma-separated event counts (default 100000,1000000)")
    parser.add_argument("--only", default=",".join(OPERATIONS),
                        help=f"operations (default: all of {','.join(OPERATIONS)})")
    parser.add_argument("--cache", type=Path,
                        default=Path(tempfile.gettempdir()) / "mfm_whole_file",
                        help="where generated files are kept between runs")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    parser.add_argument("--child", nargs=3, metavar=("OP", "PATH", "SCRATCH"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child[0], Path(args.child[1]), Path(args.child[2]))
        return 0
    ops = [o for o in args.only.split(",") if o]
    results: list[dict[str, Any]] = []
    print("| events | operation | time s | CPU s | rows/s (by CPU) | events/s (by CPU) | peak MB "
          "| base MB |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    for n in (int(x) for x in args.events.split(",")):
        path = fixture(args.cache, n)
        counts = _counts(path)
        rows = counts["runs"] + counts["events"] + counts["fact_bindings"] + counts["artifacts"]
        with tempfile.TemporaryDirectory(dir=args.cache) as scratch:
            for op in ops:
                r = measure(op, path, Path(scratch))
                r.update(op=op, events=counts["events"], rows=rows, counts=counts)
                results.append(r)
                cpu = r["cpu_seconds"]
                if op.startswith("list_runs"):
                    rate = f"{r['runs'] / r['seconds']:,.0f} runs/s ({r['runs'] / cpu:,.0f})"
                    per_event = "-"
                else:
                    rate = f"{rows / r['seconds']:,.0f} ({rows / cpu:,.0f})"
                    per_event = (f"{counts['events'] / r['seconds']:,.0f} "
                                 f"({counts['events'] / cpu:,.0f})")
                extra = "" if r.get("ok", True) else " NOT OK: " + "; ".join(r["problems"])
                print(f"| {counts['events']:,} | {op} | {r['seconds']:.2f} | {cpu:.2f} | {rate} "
                      f"| {per_event} | {r['peak_mb']:.0f} | {r['base_mb']:.0f} |{extra}",
                      flush=True)
    if args.out is not None:
        args.out.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
