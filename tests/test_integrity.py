"""verify() ok must mean every read is right (issue 11 §1): row checksums over every column a
read returns or relies on, runs cross-checked against their events, SQLite's full
integrity_check, schema objects, and the migration to schema 3."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from mfm_store import (
    ArtifactKind,
    CorruptionError,
    DomainEvent,
    EventEnvelope,
    RunCompleted,
    RunId,
    RunStarted,
    RunStatus,
)
from mfm_store.events import encode_event
from mfm_store.sqlite import SqliteStore
from mfm_store.sqlite._checksums import run_sum
from mfm_store.sqlite._schema import APPLICATION_ID, LATEST_VERSION, migrations, statements
from mfm_store.sqlite.store import checksum


@contextmanager
def tamper(path: Path) -> Iterator[sqlite3.Connection]:
    """A raw connection with the append-only triggers lifted (and put back as they were)."""
    conn = sqlite3.connect(path, isolation_level=None)
    triggers = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'trigger'").fetchall()
    names = conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall()
    conn.execute("BEGIN")
    for (name,) in names:
        conn.execute(f"DROP TRIGGER {name}")
    try:
        yield conn
        for (sql,) in triggers:
            conn.execute(sql)
        conn.execute("COMMIT")
    finally:
        conn.close()


async def seed(path: Path) -> tuple[RunId, str]:
    run = RunId.new()
    async with SqliteStore.open(path) as store:
        manifest = await store.put(ArtifactKind.MANIFEST, b'{"op":"op"}')
        await store.append(run, 0, [
            EventEnvelope(run, 1, 1_700_000_000_000, RunStarted("op", manifest, manifest)),
            EventEnvelope(run, 2, None, DomainEvent("tick", {"n": 1})),
            EventEnvelope(run, 3, None, RunCompleted(RunStatus.COMPLETED, manifest))])
        await store.record_fact(run, "quote", b'{"p":1}')
        assert (await store.verify()).ok
    return run, manifest


async def problems(path: Path, *, quick: bool = False) -> set[str]:
    async with SqliteStore.open(path, read_only=True) as store:
        report = await store.verify(quick=quick)
    return {p.kind for p in report.problems}


@pytest.mark.parametrize(("sql", "kind"), [
    ("UPDATE events SET ts_millis = 5 WHERE seq = 1", "event_checksum"),
    ("UPDATE events SET ts_millis = NULL WHERE seq = 1", "event_checksum"),
    ("UPDATE events SET name = 'tock' WHERE seq = 2", "event_checksum"),
    ("UPDATE events SET kind = 'Domain' WHERE seq = 3", "event_checksum"),
    ("UPDATE events SET seq = 9 WHERE seq = 4", "seq_gap"),
    ("UPDATE artifacts SET kind = 'Output'", "artifact_checksum"),
    ("UPDATE artifacts SET size = size + 1", "artifact_checksum"),
    ("UPDATE fact_bindings SET fact_key = 'quota'", "binding_checksum"),
    ("UPDATE fact_bindings SET seq = 3", "binding_checksum"),
    ("UPDATE runs SET op_id = 'other'", "run_checksum"),
    ("UPDATE runs SET status = 'running'", "run_checksum"),
    ("UPDATE runs SET created_ms = created_ms + 1", "run_checksum"),
    ("UPDATE runs SET updated_ms = updated_ms - 1", "run_checksum"),
    ("UPDATE runs SET head_seq = 3", "head_mismatch"),
    ("UPDATE runs SET run_id = upper(run_id)", "run_id"),
])
async def test_every_column_a_read_relies_on_is_checked(tmp_path: Path, sql: str,
                                                        kind: str) -> None:
    path = tmp_path / "s.db"
    await seed(path)
    with tamper(path) as conn:
        conn.execute(sql)
    assert kind in await problems(path)


async def test_reads_check_what_they_return(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    run, manifest = await seed(path)
    with tamper(path) as conn:
        conn.execute("UPDATE events SET ts_millis = 7 WHERE seq = 1")
        conn.execute("UPDATE runs SET status = 'failed'")
        conn.execute("UPDATE fact_bindings SET fact_key = 'quota'")
        conn.execute("UPDATE artifacts SET kind = 'Output' WHERE id = ?", (manifest,))
    async with SqliteStore.open(path, read_only=True) as store:
        for read in (lambda: store.read_range(run, 1, 1), lambda: store.head_seq(run),
                     store.list_runs, lambda: store.facts(run),
                     lambda: store.get_fact(run, "quota"), lambda: store.get(manifest)):
            with pytest.raises(CorruptionError):
                await read()


async def test_a_run_row_moved_to_another_run_id_is_caught(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    await seed(path)
    other = RunId.new()
    with tamper(path) as conn:
        conn.execute("UPDATE runs SET run_id = ?", (str(other),))
    found = await problems(path)
    assert {"run_checksum", "event_checksum", "binding_checksum"} <= found


async def test_status_and_op_id_are_cross_checked_with_the_events(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    await seed(path)
    with tamper(path) as conn:
        # A consistent-looking row (its checksum recomputed) that disagrees with the events.
        conn.execute("UPDATE runs SET status = 'failed', op_id = 'other'")
        for row in conn.execute("SELECT run_pk, run_id, op_id, status, head_seq, created_ms,"
                                " updated_ms FROM runs").fetchall():
            conn.execute("UPDATE runs SET checksum = ? WHERE run_pk = ?", (run_sum(*row), row[0]))
    assert await problems(path) == {"run_status", "run_op_id"}


def _page_of(path: Path, name: str) -> int:
    conn = sqlite3.connect(path)
    try:
        (page,) = conn.execute("SELECT pageno FROM dbstat WHERE name = ? AND pagetype = 'leaf'",
                               (name,)).fetchone()
    finally:
        conn.close()
    return int(page)


async def test_a_broken_run_id_index_is_found_by_the_full_check_only(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    run, _ = await seed(path)
    async with SqliteStore.open(path) as store:
        await store.backup(tmp_path / "b.db")
    path = tmp_path / "b.db"
    page = _page_of(path, "sqlite_autoindex_runs_1")
    data = bytearray(path.read_bytes())
    size = 4096 if data[16:18] == b"\x10\x00" else int.from_bytes(data[16:18], "big")
    start = (page - 1) * size
    at = data.index(str(run).encode(), start, start + size) + 3
    data[at] ^= 0x01
    path.write_bytes(bytes(data))
    async with SqliteStore.open(path, read_only=True) as store:
        assert await store.head_seq(run) == 0  # the lookup goes through the broken index
        quick = await store.verify(quick=True)
        full = await store.verify()
    assert quick.ok and quick.quick and "quick check" in str(quick)
    assert not full.ok and "sqlite" in {p.kind for p in full.problems}
    assert "quick" not in str(full)


async def test_schema_objects_are_checked(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    await seed(path)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("DROP VIEW event_log")
    conn.execute("CREATE VIEW event_log AS SELECT 1 AS x")
    conn.execute("CREATE INDEX extra ON artifacts (kind)")
    conn.execute("DROP TRIGGER fact_bindings_append_only_delete")
    conn.close()
    async with SqliteStore.open(path, read_only=True) as store:
        report = await store.verify()
    text = str(report)
    assert "view event_log differs" in text and "index extra is not part" in text
    assert "trigger fact_bindings_append_only_delete is missing" in text


def write_version_2_file(path: Path, run: RunId, bad_seq: int) -> str:
    """A version-2 file as the previous release wrote it; the event at ``bad_seq`` and the one
    artifact fail their (version-2) checksums."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN")
    for version, script in migrations():
        if version <= 2:
            for statement in statements(script):
                conn.execute(statement)
    conn.execute("PRAGMA user_version = 2")
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute("INSERT INTO runs (run_pk, run_id, op_id, status, head_seq, created_ms,"
                 " updated_ms) VALUES (1, ?, NULL, 'running', 3, 1, 2)", (str(run),))
    for seq in (1, 2, 3):
        body = encode_event(DomainEvent("tick", {"n": seq}))
        stored = checksum(body, seq) ^ (1 if seq == bad_seq else 0)
        conn.execute("INSERT INTO events VALUES (1, ?, NULL, 'Domain', 'tick', ?, ?)",
                     (seq, stored, body))
    data = b'{"n":1}'
    aid = hashlib.sha256(data).hexdigest()
    conn.execute("INSERT INTO artifacts VALUES (?, 'Output', ?, ?, 1, ?)",
                 (aid, len(data), checksum(data) ^ 1, data))
    conn.execute("COMMIT")
    conn.close()
    return aid


async def test_version_2_files_migrate_keeping_failures_failing(tmp_path: Path) -> None:
    path = tmp_path / "v2.db"
    run = RunId.new()
    aid = write_version_2_file(path, run, bad_seq=2)
    async with SqliteStore.open(path, read_only=True) as store:
        assert store.schema_version == 2
        legacy = await store.verify()
        with pytest.raises(CorruptionError):
            await store.read_range(run)
    async with SqliteStore.open(path) as store:
        assert store.schema_version == LATEST_VERSION == 4
        migrated = await store.verify()
        assert len(await store.read_range(run, 3)) == 1
        with pytest.raises(CorruptionError):
            await store.read_range(run, 2, 2)
        with pytest.raises(CorruptionError):
            await store.get(aid)
        assert (await store.list_runs())[0].head_seq == 3
    assert {(p.kind, p.seq) for p in legacy.problems} == {(p.kind, p.seq)
                                                           for p in migrated.problems} == {
        ("event_checksum", 2), ("artifact_checksum", None)}
