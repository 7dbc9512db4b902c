"""Push / pull with real processes: SIGKILLed syncs resumed, edges pushing to one server at once."""

from __future__ import annotations

import asyncio
import io
import json
import random
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from helpers.sync_child import seed

from conftest import pg_dsn
from mfm_store import DomainEvent, EventEnvelope, RunId, open_store
from mfm_store.sqlite import SqliteStore
from mfm_store.transfer import export_jsonl

CHILD = Path(__file__).parent / "helpers" / "sync_child.py"


def pg_target() -> str:
    return f"{pg_dsn()}#schema=s_{uuid.uuid4().hex[:16]}"


def child(*args: str | Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, str(CHILD), *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


async def run_export(store: Any, run: RunId) -> bytes:
    out = io.BytesIO()
    await export_jsonl(store, out, run_id=run)
    return out.getvalue()


def finish(proc: subprocess.Popen[bytes]) -> dict[str, Any]:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()
    last = out.decode().splitlines()[-1]
    assert last.startswith("done "), out.decode()
    report: dict[str, Any] = json.loads(last[len("done "):])
    return report


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_sync_killed_at_random_moments_then_completed(tmp_path: Path,
                                                            backend: str) -> None:
    src_path = tmp_path / "src.db"
    async with SqliteStore.open(src_path) as src:
        runs = await seed(src, 30, 40)
        total = (await src.stats())["events"]
    dst: str = str(tmp_path / "dst.db") if backend == "sqlite" else pg_target()
    rng = random.Random()
    seed_value = rng.randrange(1 << 30)
    rng.seed(seed_value)
    kills = 0
    for _ in range(12):
        proc = child(src_path, dst, "--batch", "15", "--concurrency", "4")
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"ready\n"
        wanted = rng.randrange(0, 5)  # batches to let through before the kill
        line = b""
        for _ in range(wanted):
            line = proc.stdout.readline()
            if not line.startswith(b"copied"):
                break
        if line.startswith(b"done"):
            proc.communicate(timeout=60)
            break
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
        assert proc.returncode == -signal.SIGKILL
        kills += 1
    assert kills >= 10, f"seed {seed_value}: the sync finished after {kills} kills"

    report = finish(child(src_path, dst))
    assert report["ok"], report
    async with SqliteStore.open(src_path, read_only=True) as src, open_store(dst) as out:
        for run in runs:
            assert await run_export(src, run) == await run_export(out, run), (seed_value, run)
        assert sum(s.head_seq for s in await out.list_runs()) == total
        assert (await out.verify()).ok  # type: ignore[attr-defined]
    again = finish(child(src_path, dst))
    assert again["events_copied"] == 0 and again["artifacts_copied"] == 0
    assert again["runs_unchanged"] == 30


@pytest.fixture
def edges(tmp_path: Path) -> list[Path]:
    return [tmp_path / f"edge{i}.db" for i in range(3)]


async def test_edges_push_at_once_to_postgres_with_a_worker(edges: list[Path]) -> None:
    target = pg_target()
    edge_runs: list[list[RunId]] = []
    for i, path in enumerate(edges):
        async with SqliteStore.open(path) as store:
            edge_runs.append(await seed(store, 15, 30, tag=f"e{i}-"))
    async with open_store(target) as centre:
        worker_runs = [RunId.new() for _ in range(3)]
        heads = dict.fromkeys(worker_runs, 0)
        procs = [await asyncio.create_subprocess_exec(
            sys.executable, str(CHILD), str(path), target, "--batch", "20",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            for path in edges]
        waits = [asyncio.ensure_future(p.communicate()) for p in procs]
        appended = 0
        while not all(w.done() for w in waits) or appended < 30:
            run = worker_runs[appended % 3]
            heads[run] = await centre.append(run, heads[run], [EventEnvelope(
                run, heads[run] + 1, None, DomainEvent("tick", {"n": appended}, None))])
            appended += 1
        outputs = [await w for w in waits]
        for proc, (out, err) in zip(procs, outputs, strict=True):
            assert proc.returncode == 0, err.decode()
            report = json.loads(out.decode().splitlines()[-1][len("done "):])
            assert report["ok"] and report["runs_added"] == 15, report
        for path, runs in zip(edges, edge_runs, strict=True):
            async with SqliteStore.open(path, read_only=True) as edge:
                for run in runs:
                    assert await run_export(edge, run) == await run_export(centre, run)
        for run in worker_runs:
            events = await centre.read_range(run)
            assert len(events) == heads[run]
            assert all(isinstance(e.event, DomainEvent) for e in events)
        assert sum(heads.values()) == appended
        assert len(await centre.list_runs()) == 45 + 3
        assert (await centre.verify()).ok  # type: ignore[attr-defined]
