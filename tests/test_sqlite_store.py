"""SqliteStore beyond the shared contract: the file, durability, integrity, read-only, backup."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from mfm_store import (
    ArtifactKind,
    ConcurrencyError,
    CorruptionError,
    DomainEvent,
    EventEnvelope,
    RunId,
    RunStarted,
    StorageError,
)
from mfm_store.events import encode_event
from mfm_store.sqlite import SqliteStore
from mfm_store.sqlite._schema import APPLICATION_ID, LATEST_VERSION, migrations, statements
from mfm_store.sqlite.store import checksum


def tick(run: RunId, seq: int, text: str = "tick") -> EventEnvelope:
    return EventEnvelope(run, seq, None, DomainEvent("tick", {"text": text, "seq": seq}))


async def fill(path: Path, events: int = 20) -> RunId:
    run = RunId.new()
    async with SqliteStore.open(path) as store:
        await store.append(run, 0, [tick(run, s) for s in range(1, events + 1)])
    return run


def snapshot(folder: Path) -> dict[str, tuple[int, str]]:
    return {p.name: (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(folder.iterdir())}


async def test_new_file_records_schema_version_and_application_id(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    await fill(path)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == LATEST_VERSION
    assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"runs", "events", "fact_bindings", "artifacts"} <= tables
    conn.close()


async def test_acknowledged_append_is_visible_to_another_connection(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    run = RunId.new()
    async with SqliteStore.open(path) as store:
        await store.append(run, 0, [tick(run, 1), tick(run, 2)])
        aid = await store.put(ArtifactKind.OUTPUT, b"bytes")
        other = sqlite3.connect(path)
        assert other.execute("SELECT head_seq FROM runs WHERE run_id = ?",
                             (str(run),)).fetchone() == (2,)
        assert other.execute("SELECT count(*) FROM event_log WHERE run_id = ?",
                             (str(run),)).fetchone() == (2,)
        assert other.execute("SELECT data FROM artifacts WHERE id = ?", (aid,)).fetchone() == (
            b"bytes",)
        other.close()


async def test_events_and_bindings_are_append_only(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    run = RunId.new()
    async with SqliteStore.open(path) as store:
        pid = await store.put(ArtifactKind.FACT_PAYLOAD, b"1")
        await store.bind_fact(run, "k", pid)
    conn = sqlite3.connect(path)
    for sql in ("UPDATE events SET ts_millis = 1", "DELETE FROM events",
                "UPDATE fact_bindings SET payload_id = 'x'", "DELETE FROM fact_bindings"):
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute(sql)
    conn.close()


async def test_foreign_text_file_is_refused_clearly(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_text("hello, I am not a database\n" * 10)
    before = path.read_bytes()
    with pytest.raises(StorageError) as err:
        await SqliteStore.open(path)
    assert err.value.info.code == "not_an_mfm_store"
    assert str(path) in str(err.value)
    assert path.read_bytes() == before


async def test_foreign_sqlite_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE customers (id INTEGER)")
    conn.commit()
    conn.close()
    for read_only in (False, True):
        with pytest.raises(StorageError) as err:
            await SqliteStore.open(path, read_only=read_only)
        assert err.value.info.code == "not_an_mfm_store"
        assert str(path) in str(err.value)


async def test_newer_schema_is_refused_naming_both_versions(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    await fill(path)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.commit()
    conn.close()
    with pytest.raises(StorageError) as err:
        await SqliteStore.open(path)
    assert err.value.info.code == "schema_too_new"
    message = str(err.value)
    assert str(path) in message and "99" in message and str(LATEST_VERSION) in message


def write_version_1_file(path: Path, runs: list[RunId], events: int) -> None:
    """A file as mfm_store's schema version 1 wrote it: events clustered by (run_pk, seq),
    rows written interleaved across ``runs``, one fact binding on the first run."""
    conn = sqlite3.connect(path, isolation_level=None)
    for statement in statements(migrations()[0][1]):
        conn.execute(statement)
    conn.execute("PRAGMA user_version = 1")
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute("BEGIN")
    for run in runs:
        conn.execute("INSERT INTO runs (run_id, head_seq, created_ms, updated_ms)"
                     " VALUES (?, ?, 1, 1)", (str(run), events))
    for seq in range(1, events + 1):
        for pk, run in enumerate(runs, start=1):
            body = encode_event(tick(run, seq).event)
            conn.execute("INSERT INTO events VALUES (?, ?, NULL, 'Domain', 'tick', ?, ?)",
                         (pk, seq, checksum(body, seq), body))
    conn.execute("COMMIT")
    conn.close()


async def test_version_1_file_is_read_as_it_is_when_read_only(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    runs = [RunId.new(), RunId.new()]
    write_version_1_file(path, runs, 30)
    before = snapshot(tmp_path)
    async with SqliteStore.open(path, read_only=True) as store:
        for run in runs:
            assert await store.read_range(run) == [tick(run, s) for s in range(1, 31)]
        assert (await store.verify()).ok
    assert snapshot(tmp_path) == before


async def test_version_1_file_is_migrated_keeping_every_row(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    runs = [RunId.new(), RunId.new(), RunId.new()]
    write_version_1_file(path, runs, 40)
    async with SqliteStore.open(path) as store:
        assert (await store.verify()).ok
        for run in runs:
            assert await store.read_range(run) == [tick(run, s) for s in range(1, 41)]
        assert await store.append(runs[0], 40, [tick(runs[0], 41)]) == 41
        with pytest.raises(ConcurrencyError):
            await store.append(runs[1], 39, [tick(runs[1], 40)])
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == LATEST_VERSION
    sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'events'").fetchone()[0]
    assert "WITHOUT ROWID" not in sql and "PRIMARY KEY (run_pk, seq)" in sql
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("DELETE FROM events")
    assert conn.execute("SELECT count(*) FROM event_log").fetchone() == (121,)
    conn.close()


async def test_truncated_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cut.db"
    run = RunId.new()
    async with SqliteStore.open(path) as store:
        await store.append(run, 0, [tick(run, s, "x" * 500) for s in range(1, 200)])
    size = path.stat().st_size
    with path.open("r+b") as f:
        f.truncate(size // 2)
    with pytest.raises(CorruptionError) as err:
        await SqliteStore.open(path)
    assert str(path) in str(err.value)


async def test_missing_file_in_read_only_mode(tmp_path: Path) -> None:
    path = tmp_path / "absent.db"
    with pytest.raises(StorageError) as err:
        await SqliteStore.open(path, read_only=True)
    assert err.value.info.code == "store_not_found"
    assert not path.exists()


def flip_byte_after(path: Path, marker: bytes) -> None:
    data = bytearray(path.read_bytes())
    at = data.find(marker)
    assert at >= 0, "marker not found in the file"
    data[at + len(marker) // 2] ^= 0x01
    path.write_bytes(bytes(data))


async def test_flipped_artifact_byte_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    async with SqliteStore.open(path) as store:
        aid = await store.put(ArtifactKind.OUTPUT, b"ARTIFACT-MARKER-" * 64)
        keep = await store.put(ArtifactKind.OUTPUT, b"healthy")
    flip_byte_after(path, b"ARTIFACT-MARKER-" * 8)
    async with SqliteStore.open(path) as store:
        with pytest.raises(CorruptionError) as err:
            await store.get(aid)
        assert aid in str(err.value)
        assert await store.get(keep) == b"healthy"
        report = await store.verify()
    assert not report.ok
    kinds = {(p.kind, p.artifact_id) for p in report.problems}
    assert ("artifact_checksum", aid) in kinds and ("artifact_hash", aid) in kinds
    assert aid in str(report)


async def test_flipped_event_byte_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    run = RunId.new()
    async with SqliteStore.open(path) as store:
        await store.append(run, 0, [tick(run, 1), tick(run, 2, "EVENT-MARKER-" * 8),
                                    tick(run, 3)])
    flip_byte_after(path, b"EVENT-MARKER-" * 4)
    async with SqliteStore.open(path) as store:
        assert [e.seq for e in await store.read_range(run, 3)] == [3]
        with pytest.raises(CorruptionError) as err:
            await store.read_range(run)
        assert str(run) in str(err.value) and "event 2" in str(err.value)
        report = await store.verify()
    assert [(p.kind, p.run_id, p.seq) for p in report.problems] == [
        ("event_checksum", str(run), 2)]


async def test_verify_reports_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    run, other = RunId.new(), RunId.new()
    async with SqliteStore.open(path) as store:
        gone = await store.put(ArtifactKind.MANIFEST, b'{"gone":1}')
        await store.append(run, 0, [EventEnvelope(run, 1, None, RunStarted("op", gone, gone))])
        await store.append(other, 0, [tick(other, 1), tick(other, 2)])
        assert (await store.verify()).ok
    conn = sqlite3.connect(path)
    conn.execute("UPDATE runs SET head_seq = 7 WHERE run_id = ?", (str(other),))
    conn.execute("DELETE FROM artifacts WHERE id = ?", (gone,))
    conn.commit()
    conn.close()
    async with SqliteStore.open(path) as store:
        report = await store.verify()
    found = sorted((p.kind, p.run_id) for p in report.problems)
    assert found == [("head_mismatch", str(other)), ("missing_artifact", str(run)),
                     ("missing_artifact", str(run)), ("run_checksum", str(other))]


async def test_verify_is_clean_on_a_healthy_file(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    run = RunId.new()
    async with SqliteStore.open(path) as store:
        pid = await store.put(ArtifactKind.FACT_PAYLOAD, b'{"n":1}')
        await store.append(run, 0, [tick(run, 1)])
        await store.bind_fact(run, "k", pid)
        report = await store.verify()
    assert report.ok, str(report)
    assert (report.runs, report.events, report.bindings, report.artifacts) == (1, 2, 1, 1)


async def test_read_only_copy_is_never_written(tmp_path: Path) -> None:
    source = tmp_path / "live.db"
    run = await fill(source)
    folder = tmp_path / "copy"
    folder.mkdir()
    shutil.copy(source, folder / "copy.db")
    before = snapshot(folder)
    async with SqliteStore.open(folder / "copy.db", read_only=True) as store:
        assert store.read_only
        assert len(await store.read_range(run)) == 20
        assert (await store.verify()).ok
        for write in (store.append(run, 20, [tick(run, 21)]),
                      store.put(ArtifactKind.OUTPUT, b"x")):
            with pytest.raises(StorageError) as err:
                await write
            assert err.value.info.code == "store_read_only"
    assert snapshot(folder) == before


async def test_backup_while_writers_continue(tmp_path: Path) -> None:
    path = tmp_path / "live.db"
    run = await fill(path, events=100)
    stop = asyncio.Event()
    async with SqliteStore.open(path) as store:

        async def keep_writing() -> int:
            head = 100
            while not stop.is_set():
                head = await store.append(run, head, [tick(run, head + 1)])
                await asyncio.sleep(0)
            return head

        writer = asyncio.create_task(keep_writing())
        dest = await store.backup(tmp_path / "backup.db")
        stop.set()
        final_head = await writer
        with pytest.raises(StorageError):
            await store.backup(dest)
    assert not Path(f"{dest}-wal").exists()
    folder_before = snapshot(tmp_path)
    async with SqliteStore.open(dest, read_only=True) as copy:
        copied = await copy.read_range(run)
        assert (await copy.verify()).ok
    assert 100 <= len(copied) <= final_head
    assert [e.seq for e in copied] == list(range(1, len(copied) + 1))
    assert snapshot(tmp_path) == folder_before


async def test_backup_stores_each_run_together(tmp_path: Path) -> None:
    path = tmp_path / "live.db"
    runs = [RunId.new() for _ in range(4)]
    async with SqliteStore.open(path) as store:

        async def append_all(run: RunId) -> None:
            for seq in range(1, 51):
                await store.append(run, seq - 1, [tick(run, seq)])

        await asyncio.gather(*(append_all(run) for run in runs))  # interleaved on disk
        dest = await store.backup(tmp_path / "copy.db")

    def spans(file: Path) -> list[tuple[int, int]]:
        conn = sqlite3.connect(file)
        try:
            return conn.execute("SELECT count(*), max(rowid) - min(rowid) + 1 FROM events"
                                " GROUP BY run_pk").fetchall()
        finally:
            conn.close()

    assert any(count < span for count, span in spans(path))  # the live file interleaves
    assert spans(dest) == [(50, 50)] * 4  # the copy does not
    async with SqliteStore.open(dest, read_only=True) as copy:
        for run in runs:
            assert await copy.read_range(run) == [tick(run, s) for s in range(1, 51)]
        assert (await copy.verify()).ok


async def test_backup_of_a_read_only_version_1_file_is_a_current_file(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    runs = [RunId.new(), RunId.new()]
    write_version_1_file(path, runs, 10)
    async with SqliteStore.open(path, read_only=True) as store:
        dest = await store.backup(tmp_path / "copy.db")
    conn = sqlite3.connect(dest)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == LATEST_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    conn.close()
    async with SqliteStore.open(dest, read_only=True) as copy:
        assert await copy.read_range(runs[1]) == [tick(runs[1], s) for s in range(1, 11)]


async def test_failed_backup_leaves_nothing_behind(tmp_path: Path) -> None:
    path = tmp_path / "live.db"
    await fill(path)
    async with SqliteStore.open(path) as store:
        names = sorted(p.name for p in tmp_path.iterdir())
        with pytest.raises(StorageError) as err:
            await store.backup(tmp_path / "missing" / "copy.db")
        assert "copy.db" in str(err.value)
        assert sorted(p.name for p in tmp_path.iterdir()) == names


async def test_two_backups_to_one_destination_give_one_copy(tmp_path: Path) -> None:
    path = tmp_path / "live.db"
    run = await fill(path, events=50)
    async with SqliteStore.open(path) as store:
        for _ in range(3):
            dest = tmp_path / "copy.db"
            results = await asyncio.gather(store.backup(dest), store.backup(dest),
                                           return_exceptions=True)
            errors = [r for r in results if isinstance(r, BaseException)]
            assert len(errors) == 1 and isinstance(errors[0], StorageError), results
            assert "already exists" in str(errors[0])
            async with SqliteStore.open(dest, read_only=True) as copy:
                assert len(await copy.read_range(run)) == 50
                assert (await copy.verify()).ok
            dest.unlink()
    assert not list(tmp_path.glob("*.partial")) and not list(tmp_path.glob(".*.partial"))


async def test_backup_destination_through_a_missing_folder_is_refused(tmp_path: Path,
                                                                      monkeypatch: Any) -> None:
    path = tmp_path / "live.db"
    await fill(path)
    monkeypatch.chdir(tmp_path)
    async with SqliteStore.open(path) as store:
        names = sorted(p.name for p in tmp_path.iterdir())
        with pytest.raises(StorageError, match=r"copy\.db"):
            await store.backup(Path("nosuchdir") / ".." / "copy.db")
        assert sorted(p.name for p in tmp_path.iterdir()) == names
        relative = await store.backup("copy.db")  # a plain relative path works
    assert relative == tmp_path / "copy.db" and relative.exists()


async def test_backup_does_not_hold_the_write_lock(tmp_path: Path) -> None:
    # The copy takes far longer than the writer's busy timeout: had the backup taken the
    # source's write lock, the appends made meanwhile would fail with store_busy.
    path = tmp_path / "live.db"
    run = await fill(path, events=1)
    async with SqliteStore.open(path, busy_timeout=0.005) as store:
        for _ in range(64):
            await store.put(ArtifactKind.OUTPUT, os.urandom(1 << 20))
        backup = asyncio.create_task(store.backup(tmp_path / "copy.db"))
        head, during = 1, 0
        while not backup.done():
            head = await store.append(run, head, [tick(run, head + 1)])
            during += 1
            await asyncio.sleep(0)
        await backup
    assert during > 1


async def test_verify_of_a_live_file_sees_one_snapshot(tmp_path: Path) -> None:
    path = tmp_path / "live.db"
    run = await fill(path, events=20_000)
    async with SqliteStore.open(path) as store:
        reports, n = [], 0
        for _ in range(3):
            check = asyncio.create_task(store.verify())
            while not check.done():  # facts are recorded (event + binding) while verify reads
                n += 1
                await store.record_fact(run, f"k{n}", b"%d" % n)
                await asyncio.sleep(0)
            reports.append(await check)
    assert n > 3
    assert all(r.ok for r in reports), [str(r) for r in reports if not r.ok]


async def test_gc_dry_run_deletes_nothing_and_apply_keeps_references(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    run = RunId.new()
    async with SqliteStore.open(path) as store:
        bound = await store.put(ArtifactKind.FACT_PAYLOAD, b"bound")
        ref = await store.put(ArtifactKind.MANIFEST, b"manifest")
        orphan = await store.put(ArtifactKind.OUTPUT, b"orphan")
        await store.bind_fact(run, "k", bound)
        await store.append(run, 1, [EventEnvelope(run, 2, None, RunStarted("op", ref, ref))])
        assert (await store.gc()).artifacts == []  # everything is younger than an hour
        dry = await store.gc(min_age_seconds=0)
        assert dry.artifacts == [orphan] and dry.bytes == 6 and not dry.applied
        assert await store.exists(orphan)
        done = await store.gc(apply=True, min_age_seconds=0)
        assert done.artifacts == [orphan] and done.applied
        assert not await store.exists(orphan)
        assert await store.exists(bound) and await store.exists(ref)
        assert (await store.verify()).ok


async def test_one_failing_write_in_a_batch_does_not_affect_the_others(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    runs = [RunId.new() for _ in range(10)]
    async with SqliteStore.open(path) as store:
        await store.append(runs[0], 0, [tick(runs[0], 1)])
        results = await asyncio.gather(
            *(store.append(r, 0, [tick(r, 1)]) for r in runs), return_exceptions=True)
        assert isinstance(results[0], StorageError)
        assert results[1:] == [1] * 9
        assert [await store.head_seq(r) for r in runs] == [1] * 10


async def test_iter_events_pages_through_a_long_run(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    run = RunId.new()
    async with SqliteStore.open(path, durability="normal") as store:
        for start in range(1, 5001, 1000):
            await store.append(run, start - 1, [tick(run, s) for s in range(start, start + 1000)])
        seqs = [e.seq async for e in store.iter_events(run, page_size=333)]
        assert seqs == list(range(1, 5001))
        stats = await store.stats()
        assert stats["events"] == 5000 and stats["runs"] == 1


async def test_unclosed_store_warns(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / "s.db")
    with pytest.warns(ResourceWarning):
        store.__del__()
    await store.close()


async def test_durability_argument_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        SqliteStore.open(tmp_path / "s.db", durability="sometimes")  # type: ignore[arg-type]
    assert not os.path.exists(tmp_path / "s.db")


async def test_a_caller_cancelled_before_its_batch_starts_writes_nothing(tmp_path: Path) -> None:
    run, other = RunId.new(), RunId.new()
    async with SqliteStore.open(tmp_path / "s.db") as store:
        leader = asyncio.create_task(store.append(run, 0, [tick(run, 1)]))
        follower = asyncio.create_task(store.append(other, 0, [tick(other, 1)]))
        await asyncio.sleep(0)  # both tasks have submitted; the leader yields once
        leader.cancel()
        with pytest.raises(asyncio.CancelledError):
            await leader
        assert await follower == 1
        assert await store.head_seq(run) == 0
        assert await store.head_seq(other) == 1


async def test_read_only_open_of_a_live_file_follows_the_writer(tmp_path: Path) -> None:
    path = tmp_path / "live.db"
    run = RunId.new()
    async with SqliteStore.open(path) as writer:
        await writer.append(run, 0, [tick(run, 1)])
        async with SqliteStore.open(path, read_only=True) as reader:
            assert await reader.head_seq(run) == 1
            await writer.append(run, 1, [tick(run, 2), tick(run, 3)])
            assert [e.seq for e in await reader.read_range(run)] == [1, 2, 3]
            assert (await reader.verify()).ok


async def test_batched_appends_to_known_runs_keep_per_append_answers(tmp_path: Path) -> None:
    runs = [RunId.new() for _ in range(20)]
    async with SqliteStore.open(tmp_path / "s.db") as store:
        for r in runs:
            await store.append(r, 0, [tick(r, 1)])  # the runs are now known to the store
        ok = await asyncio.gather(*(store.append(r, 1, [tick(r, 2), tick(r, 3)]) for r in runs))
        assert ok == [3] * 20
        # One batch: two appends race for the same head of runs[0]; a stale one for runs[1].
        results = await asyncio.gather(
            store.append(runs[0], 3, [tick(runs[0], 4, "a")]),
            store.append(runs[0], 3, [tick(runs[0], 4, "b")]),
            store.append(runs[1], 2, [tick(runs[1], 3)]),
            *(store.append(r, 3, [tick(r, 4)]) for r in runs[2:]),
            return_exceptions=True)
        assert results[0] == 4 and isinstance(results[1], StorageError)
        assert results[1].info.code == "event_store_concurrency"
        assert isinstance(results[2], StorageError)
        assert results[3:] == [4] * 18
        (fourth,) = await store.read_range(runs[0], 4)
        assert isinstance(fourth.event, DomainEvent) and fourth.event.payload["text"] == "a"
        assert [await store.head_seq(r) for r in runs] == [4, 3] + [4] * 18
        assert (await store.verify()).ok


async def test_verify_reports_progress_on_the_loop(tmp_path: Path) -> None:
    run = RunId.new()
    calls: list[tuple[str, int, int | None]] = []
    async with SqliteStore.open(tmp_path / "s.db", durability="normal") as store:
        await store.append(run, 0, [tick(run, s) for s in range(1, 2501)])
        pid = await store.put(ArtifactKind.FACT_PAYLOAD, b"1")
        await store.bind_fact(run, "k", pid)
        report = await store.verify(progress=lambda *call: calls.append(call))
    assert report.ok
    assert calls[0] == ("verify", 0, 2503)  # 2501 events, 1 artifact, 1 binding
    assert {phase for phase, _, _ in calls} == {"verify"}
    assert sum(n for _, n, _ in calls) == 2503


async def test_a_put_of_stored_bytes_makes_them_young_again(tmp_path: Path) -> None:
    # put an old orphan -> gc sees it -> put again -> gc keeps it -> it can be used.
    path = tmp_path / "s.db"
    run = RunId.new()
    async with SqliteStore.open(path) as store:
        pid = await store.put(ArtifactKind.FACT_PAYLOAD, b'{"n":1}')
    conn = sqlite3.connect(path)
    conn.execute("UPDATE artifacts SET created_ms = 0")  # put long ago, never used
    conn.commit()
    conn.close()
    async with SqliteStore.open(path) as store:
        assert (await store.gc(min_age_seconds=3600)).artifacts == [pid]
        assert await store.put(ArtifactKind.FACT_PAYLOAD, b'{"n":1}') == pid
        collected = await store.gc(apply=True, min_age_seconds=3600)
        assert collected.artifacts == [] and collected.applied
        assert (await store.bind_fact(run, "k", pid)).inserted
        assert await store.get(pid) == b'{"n":1}'
        assert (await store.verify()).ok


async def test_an_event_naming_an_artifact_gc_removed_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    run = RunId.new()
    async with SqliteStore.open(path) as store:
        snap = await store.put(ArtifactKind.CONTEXT_SNAPSHOT, b"{}")
        assert (await store.gc(apply=True, min_age_seconds=0)).artifacts == [snap]
        with pytest.raises(StorageError) as err:
            await store.append(run, 0, [EventEnvelope(run, 1, None, RunStarted("op", snap, snap))])
        assert err.value.info.code == "artifact_not_found"
        assert await store.head_seq(run) == 0 and (await store.verify()).ok


@pytest.mark.parametrize("read_only", [True, False])
async def test_an_empty_file_is_not_an_mfm_store(tmp_path: Path, read_only: bool) -> None:
    path = tmp_path / "empty.db"
    path.write_bytes(b"")
    if read_only:
        with pytest.raises(StorageError) as err:
            await SqliteStore.open(path, read_only=True)
        assert err.value.info.code == "not_an_mfm_store"
        assert "empty" in str(err.value) and "migrat" not in str(err.value)
        assert path.read_bytes() == b""
    else:  # a writable open of an empty file creates the store, as SQLite does
        async with SqliteStore.open(path) as store:
            assert await store.list_runs() == []


@pytest.mark.parametrize("device", ["/dev/null", "/dev/zero"])
@pytest.mark.parametrize("read_only", [True, False])
async def test_a_device_is_not_an_mfm_store(device: str, read_only: bool) -> None:
    with pytest.raises(StorageError) as err:
        await SqliteStore.open(device, read_only=read_only)
    assert err.value.info.code == "not_an_mfm_store"
    assert device in str(err.value) and "not a regular file" in str(err.value)


async def test_backup_onto_an_existing_path_is_destination_exists(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    taken = tmp_path / "taken"
    taken.write_bytes(b"keep me")
    async with SqliteStore.open(path) as store:
        with pytest.raises(StorageError) as err:
            await store.backup(taken)
    assert err.value.info.code == "destination_exists"
    assert taken.read_bytes() == b"keep me"


async def test_disk_full_is_coded_and_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    run = RunId.new()
    async with SqliteStore.open(path) as store:
        await store.append(run, 0, [tick(run, 1)])
        probe = sqlite3.connect(path)
        pages = probe.execute("PRAGMA page_count").fetchone()[0]
        probe.close()
        # White box: SQLite answers SQLITE_FULL when a file may grow no further, as on a full
        # disk; the store must classify it by its result code.
        store._writer._conn.execute(f"PRAGMA max_page_count = {pages + 2}")  # type: ignore[union-attr]
        with pytest.raises(StorageError) as err:
            await store.put(ArtifactKind.OUTPUT, os.urandom(64 * 1024))
        assert err.value.info.code == "disk_full"
        assert str(path) in str(err.value)
        assert await store.head_seq(run) == 1
