"""store.prune: finished runs only, one transaction, artifacts nothing references, archive
first; the triggers still refuse every other delete; SIGKILL and concurrent writers."""

from __future__ import annotations

import io
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from mfm_store import (
    ArtifactKind,
    DomainEvent,
    EventEnvelope,
    MemoryStore,
    RunCompleted,
    RunId,
    RunStatus,
)
from mfm_store.errors import StorageError
from mfm_store.sqlite import SqliteStore
from mfm_store.transfer import export_jsonl, import_jsonl

HELPERS = Path(__file__).parent / "helpers"
ROOT = str(Path(__file__).parent.parent)


async def open_backend(name: str, tmp_path: Path) -> Any:
    if name == "memory":
        return MemoryStore()
    if name == "postgres":
        from conftest import BACKENDS
        return await BACKENDS["postgres"](tmp_path)
    return await SqliteStore.open(tmp_path / "p.db")


async def make_run(store: Any, *, finished: bool, tag: str, shared: bytes = b"shared"
                   ) -> RunId:
    run = RunId.new()
    own = await store.put(ArtifactKind.OUTPUT, f"own {tag}".encode())
    common = await store.put(ArtifactKind.OUTPUT, shared)
    await store.record_fact(run, f"fact-{tag}", f'{{"t":"{tag}"}}'.encode())
    envs = [EventEnvelope(run, 2, None, DomainEvent("made", {"t": tag}, payload_ref=own)),
            EventEnvelope(run, 3, None, DomainEvent("uses", {}, payload_ref=common))]
    head = await store.append(run, 1, envs)
    if finished:
        await store.append(run, head, [EventEnvelope(run, head + 1, None,
                                                     RunCompleted(RunStatus.COMPLETED))])
    return run


@pytest.mark.parametrize("backend", ["memory", "sqlite", "postgres"])
async def test_prune_deletes_finished_runs_and_their_own_artifacts_only(
        tmp_path: Path, backend: str) -> None:
    store = await open_backend(backend, tmp_path)
    try:
        done = await make_run(store, finished=True, tag="done")
        running = await make_run(store, finished=False, tag="running")
        newest = await make_run(store, finished=True, tag="newest")
        dry = await store.prune([done, running], dry_run=True)
        assert dry.runs == (done,) and dry.kept == ((running, "running"),)
        assert not dry.applied and await store.head_seq(done) == 4
        report = await store.prune([done, running], artifact_min_age_seconds=0)
        assert report.applied and report.runs == (done,) and report.events == 4
        assert report.fact_bindings == 1
        assert await store.head_seq(done) == 0 and await store.read_range(done) == []
        assert await store.facts(done) == {}
        assert {r.run_id for r in await store.list_runs()} == {running, newest}
        own = ArtifactKind.OUTPUT
        assert not await store.exists(await _id(own, b"own done"))
        assert await store.exists(await _id(own, b"shared"))  # still referenced
        assert len(report.artifacts) == 2  # its output and its fact payload
        assert await store.head_seq(running) == 3
        with pytest.raises(StorageError) as info:
            await store.prune([done], keep_last=1)
        assert info.value.info.code == "invalid_argument"
        if backend != "memory":
            assert (await store.verify()).ok
    finally:
        await store.close()


async def _id(kind: ArtifactKind, data: bytes) -> str:
    import hashlib
    return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("backend", ["memory", "sqlite", "postgres"])
async def test_policy_keeps_the_last_and_the_recent(tmp_path: Path, backend: str) -> None:
    store = await open_backend(backend, tmp_path)
    try:
        runs = [await make_run(store, finished=True, tag=str(i)) for i in range(5)]
        await make_run(store, finished=False, tag="live")
        report = await store.prune(keep_last=2, artifact_min_age_seconds=0)
        assert set(report.runs) == set(runs[:3])
        assert (await store.prune(finished_before=0)).runs == ()
        later = await store.prune(finished_before=10**15, artifact_min_age_seconds=0)
        # the SQLite file keeps the run holding the newest event row until a newer one
        assert set(later.runs) | {r for r, _ in later.kept} == set(runs[3:])
    finally:
        await store.close()


async def test_the_run_holding_the_newest_event_waits_for_a_newer_one(tmp_path: Path) -> None:
    async with SqliteStore.open(tmp_path / "n.db") as store:
        old = await make_run(store, finished=True, tag="old")
        report = await store.prune([old], artifact_min_age_seconds=0)
        assert report.runs == () and report.kept == ((old, "holds_newest_event"),)
        async with store.follow(after="end") as follower:
            await make_run(store, finished=False, tag="next")
            assert (await store.prune([old], artifact_min_age_seconds=0)).runs == (old,)
            first = await anext(follower)
        assert first.seq == 1 and first.run_id != old  # positions are never given out twice


async def test_the_triggers_refuse_every_other_delete_and_update(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    async with SqliteStore.open(path) as store:
        done = await make_run(store, finished=True, tag="done")
        running = await make_run(store, finished=False, tag="running")
        await store.prune([done], artifact_min_age_seconds=0)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        (pk,), = conn.execute("SELECT run_pk FROM runs WHERE run_id = ?", (str(running),))
        for sql in ("DELETE FROM events", "UPDATE events SET seq = seq",
                    "DELETE FROM fact_bindings", "UPDATE fact_bindings SET seq = seq",
                    "DELETE FROM runs", f"INSERT INTO prune_grants VALUES ({pk})",
                    "INSERT INTO prune_grants VALUES (999)"):
            with pytest.raises(sqlite3.DatabaseError):
                conn.execute(sql)
        assert conn.execute("SELECT count(*) FROM prune_grants").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM events").fetchone() == (3,)
        assert conn.execute("PRAGMA auto_vacuum").fetchone() == (2,)  # incremental
    finally:
        conn.close()


async def _run_exports(store: Any, runs: list[RunId]) -> dict[RunId, bytes]:
    out = {}
    for run in runs:
        buf = io.BytesIO()
        await export_jsonl(store, buf, run_id=run)
        out[run] = buf.getvalue()
    return out


async def test_archive_then_prune_then_import_gives_identical_exports(tmp_path: Path) -> None:
    archive = tmp_path / "archive.jsonl"
    async with SqliteStore.open(tmp_path / "a.db") as store:
        runs = [await make_run(store, finished=True, tag=str(i)) for i in range(3)]
        await make_run(store, finished=False, tag="live")
        before = await _run_exports(store, runs)
        report = await store.prune(runs, archive=archive, artifact_min_age_seconds=0)
        assert set(report.runs) == set(runs) and report.archive == str(archive)
        assert [await store.head_seq(r) for r in runs] == [0, 0, 0]
        with archive.open("rb") as f:
            await import_jsonl(store, f)
        assert await _run_exports(store, runs) == before
        assert (await store.verify()).ok
        with pytest.raises(StorageError) as info:  # an archive is never overwritten
            await store.prune(runs, archive=archive)
        assert info.value.info.code == "destination_exists"
        assert [await store.head_seq(r) for r in runs] == [4, 4, 4]


async def test_archive_into_another_store(tmp_path: Path) -> None:
    async with SqliteStore.open(tmp_path / "a.db") as store, \
            SqliteStore.open(tmp_path / "b.db") as other:
        runs = [await make_run(store, finished=True, tag=str(i)) for i in range(2)]
        await make_run(store, finished=False, tag="live")
        before = await _run_exports(store, runs)
        report = await store.prune(keep_last=0, archive=other, artifact_min_age_seconds=0)
        assert set(report.runs) == set(runs)
        assert await _run_exports(other, runs) == before


def spawn(script: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, str(HELPERS / script), *args],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)


async def test_prune_while_other_processes_append_to_other_runs(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    async with SqliteStore.open(path) as store:
        finished = [await make_run(store, finished=True, tag=str(i)) for i in range(30)]
        writers = [(run, spawn("sqlite_child.py", "append", str(path), str(run), "2"))
                   for run in (RunId.new(), RunId.new())]
        acked: dict[RunId, int] = {}
        for run, child in writers:
            assert child.stdout is not None
            acked[run] = int(child.stdout.readline().split()[0])
        half = len(finished) // 2
        r1 = await store.prune(finished[:half], artifact_min_age_seconds=0)
        for run, child in writers:
            assert child.stdout is not None
            acked[run] = int(child.stdout.readline().split()[0])
        r2 = await store.prune(finished[half:], artifact_min_age_seconds=0)
        for run, child in writers:
            assert child.stdout is not None
            acked[run] = int(child.stdout.readline().split()[0])
            child.kill()
            child.communicate()
        assert len(r1.runs) + len(r2.runs) == len(finished)
        for run, head in acked.items():
            assert await store.head_seq(run) >= head
            assert [e.seq for e in await store.read_range(run)] == list(
                range(1, await store.head_seq(run) + 1))
        assert (await store.verify()).ok


async def test_sigkill_during_a_prune_leaves_each_run_whole_or_gone(tmp_path: Path) -> None:
    path = tmp_path / "k.db"
    rng = random.Random(18)
    async with SqliteStore.open(path) as store:
        for i in range(60):
            await make_run(store, finished=True, tag=str(i))
        await make_run(store, finished=False, tag="live")
    for _round in range(4):
        child = spawn("prune_child.py", "prune", str(path))
        assert child.stdout is not None
        assert child.stdout.readline() == "start\n"
        time.sleep(rng.uniform(0, 0.03))  # fault injection: kill at a random moment
        child.send_signal(signal.SIGKILL)
        child.communicate()
        async with SqliteStore.open(path) as store:
            for summary in await store.list_runs():
                events = await store.read_range(summary.run_id)
                assert [e.seq for e in events] == list(range(1, summary.head_seq + 1))
            report = await store.verify()
            assert report.ok, str(report)
            for i in range(5):
                await make_run(store, finished=True, tag=f"{_round}-{i}")


async def test_prune_command_dry_run_then_apply_with_an_archive(tmp_path: Path) -> None:
    path = tmp_path / "cli.db"
    async with SqliteStore.open(path) as store:
        old = [await make_run(store, finished=True, tag=str(i)) for i in range(3)]
        live = await make_run(store, finished=False, tag="live")
    args = ["--db", str(path), "prune", "--keep-last", "1"]
    child = subprocess.run([sys.executable, "-m", "mfm_store._prune_command", *args],
                           capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert child.returncode == 0, child.stderr
    assert child.stdout.count("would prune") == 2 and "add --apply" in child.stdout
    archive = tmp_path / "old.jsonl"
    child = subprocess.run([sys.executable, "-m", "mfm_store._prune_command", *args,
                            "--archive", str(archive), "--apply"],
                           capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert child.returncode == 0, child.stderr
    assert child.stdout.count("pruned  ") == 2 and archive.exists()
    async with SqliteStore.open(path) as store:
        assert {r.run_id for r in await store.list_runs()} == {old[2], live}


def test_prune_command_usage_errors(tmp_path: Path) -> None:
    from mfm_store._prune_command import main

    path = str(tmp_path / "none.db")
    assert main(["--db", path, "prune"]) == 2  # nothing said to prune
    assert main(["--db", path, "prune", "abc", "--keep-last", "1"]) == 2
    assert main(["--db", path, "prune", "--keep-last", "1"]) == 3  # no such file


async def test_postgres_triggers_refuse_every_other_delete_and_update(tmp_path: Path) -> None:
    import psycopg

    from conftest import pg_dsn

    store = await open_backend("postgres", tmp_path)
    try:
        done = await make_run(store, finished=True, tag="done")
        running = await make_run(store, finished=False, tag="running")
        assert (await store.prune([done], artifact_min_age_seconds=0)).runs == (done,)
        schema = store._schema
    finally:
        await store.close()
    async with await psycopg.AsyncConnection.connect(pg_dsn(), autocommit=True) as conn:
        await conn.execute(f"SET search_path = {schema}")
        for sql in ("DELETE FROM events", "UPDATE events SET seq = seq", "TRUNCATE events",
                    "DELETE FROM fact_bindings", "UPDATE fact_bindings SET seq = seq",
                    "DELETE FROM runs"):
            with pytest.raises(psycopg.Error):
                await conn.execute(sql)
        with pytest.raises(psycopg.Error):  # even on the prune path: not a running run
            async with conn.transaction():
                await conn.execute("SET LOCAL mfm.prune = 'on'")
                await conn.execute("DELETE FROM runs WHERE run_id = %s", (str(running),))
        cur = await conn.execute("SELECT count(*) FROM events")
        assert await cur.fetchone() == (3,)
