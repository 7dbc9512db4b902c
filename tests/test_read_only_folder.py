"""Read-only means nothing in the folder changes (issue 11 §5), and committed data in a ``-wal``
is still read; a read-only store refuses every write, gc included."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mfm_store import ArtifactKind, DomainEvent, EventEnvelope, RunId, StorageError
from mfm_store.sqlite import SqliteStore


def listing(folder: Path) -> dict[str, tuple[int, int, str]]:
    """Every file of the folder: size, mtime and SHA-256."""
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns,
                     hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(folder.iterdir())}


def tick(run: RunId, seq: int) -> EventEnvelope:
    return EventEnvelope(run, seq, None, DomainEvent("tick", {"seq": seq}))


async def read_everything(path: Path, run: RunId) -> tuple[int, int, bool]:
    async with SqliteStore.open(path, read_only=True) as store:
        events = await store.read_range(run)
        report = await store.verify()
        with pytest.raises(StorageError) as err:
            await store.append(run, len(events), [tick(run, len(events) + 1)])
        assert err.value.info.code == "store_read_only"
        return len(events), len(await store.facts(run)), report.ok


async def test_a_plain_copy_of_a_live_file_with_its_wal_and_no_shm(tmp_path: Path) -> None:
    live, copies = tmp_path / "live", tmp_path / "copy"
    live.mkdir()
    copies.mkdir()
    run = RunId.new()
    async with SqliteStore.open(live / "s.db") as store:
        await store.append(run, 0, [tick(run, s) for s in range(1, 31)])
        await store.record_fact(run, "k", b'{"n":1}')
        # Copied while open: the commits are still in the -wal.
        shutil.copyfile(live / "s.db", copies / "s.db")
        shutil.copyfile(live / "s.db-wal", copies / "s.db-wal")
    assert (copies / "s.db-wal").stat().st_size > 0
    before = listing(copies)
    assert await read_everything(copies / "s.db", run) == (31, 1, True)
    assert listing(copies) == before


CHILD = textwrap.dedent("""
    import asyncio, os, signal, sys
    from mfm_store import DomainEvent, EventEnvelope, RunId
    from mfm_store.sqlite import SqliteStore

    async def main():
        run = RunId.parse(sys.argv[2])
        store = await SqliteStore.open(sys.argv[1])
        await store.append(run, 0, [EventEnvelope(run, s, None, DomainEvent("tick", {"seq": s}))
                                    for s in range(1, 21)])
        await store.record_fact(run, "k", b'{"n":1}')
        os.kill(os.getpid(), signal.SIGKILL)

    asyncio.run(main())
""")


async def test_a_file_a_killed_writer_left_behind(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    run = RunId.new()
    done = subprocess.run([sys.executable, "-c", CHILD, str(path), str(run)], timeout=60)
    assert done.returncode == -9
    assert Path(f"{path}-wal").stat().st_size > 0 and Path(f"{path}-shm").exists()
    before = listing(tmp_path)
    assert await read_everything(path, run) == (21, 1, True)
    assert listing(tmp_path) == before


async def test_a_closed_file_is_read_without_creating_anything(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    run = RunId.new()
    async with SqliteStore.open(path) as store:
        await store.append(run, 0, [tick(run, 1)])
    before = listing(tmp_path)
    assert await read_everything(path, run) == (1, 0, True)
    assert listing(tmp_path) == before


LIVE_CHILD = textwrap.dedent("""
    import asyncio, sys
    from mfm_store import DomainEvent, EventEnvelope, RunId
    from mfm_store.sqlite import SqliteStore

    async def main():
        run = RunId.parse(sys.argv[2])
        async with SqliteStore.open(sys.argv[1]) as store:
            for seq in (1, 2):
                await store.append(run, seq - 1,
                                   [EventEnvelope(run, seq, None, DomainEvent("tick", {}))])
                print("appended", flush=True)
                sys.stdin.readline()

    asyncio.run(main())
""")


async def test_a_file_another_process_has_open_is_read_live(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    run = RunId.new()
    with subprocess.Popen([sys.executable, "-c", LIVE_CHILD, str(path), str(run)],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as child:
        try:
            assert child.stdout is not None and child.stdin is not None
            assert child.stdout.readline().strip() == "appended"
            async with SqliteStore.open(path, read_only=True) as store:
                assert await store.head_seq(run) == 1
                child.stdin.write("\n")
                child.stdin.flush()
                assert child.stdout.readline().strip() == "appended"
                assert await store.head_seq(run) == 2  # through the writer's index, no copy
            child.stdin.write("\n")
            child.stdin.flush()
            assert child.wait(timeout=60) == 0
        finally:
            if child.poll() is None:
                child.kill()


async def test_read_only_store_refuses_gc_apply_even_with_nothing_to_delete(
        tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    async with SqliteStore.open(path) as store:
        await store.put(ArtifactKind.OUTPUT, b"orphan")
    for min_age in (0.0, 10**6):
        async with SqliteStore.open(path, read_only=True) as store:
            with pytest.raises(StorageError) as err:
                await store.gc(apply=True, min_age_seconds=min_age)
            assert err.value.info.code == "store_read_only"
            assert (await store.gc(min_age_seconds=0)).applied is False
    assert os.path.exists(path)
