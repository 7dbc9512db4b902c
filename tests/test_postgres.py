"""What only the PostgreSQL store has: schemas, roles, DSNs, the server's own checks and
faults. The store contract itself runs on PostgreSQL through ``BACKENDS`` (test_contract.py)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from conftest import pg_dsn
from mfm_store import (
    ArtifactKind,
    CorruptionError,
    DomainEvent,
    EventEnvelope,
    MemoryStore,
    RunId,
    RunStarted,
    StorageError,
    open_store,
)
from mfm_store.postgres import PostgresStore
from mfm_store.sqlite import SqliteStore


def new_schema() -> str:
    return f"t_{uuid.uuid4().hex[:16]}"


@pytest.fixture
async def admin() -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """A superuser connection to the test server (autocommit)."""
    conn = await psycopg.AsyncConnection.connect(pg_dsn(), autocommit=True)
    try:
        yield conn
    finally:
        await conn.close()


def envs(run: RunId, start: int, n: int) -> list[EventEnvelope]:
    return [EventEnvelope(run, s, 1_700_000_000_000 + s, DomainEvent("tick", {"i": s}))
            for s in range(start, start + n)]


async def test_open_store_picks_the_backend_from_the_target(tmp_path: Path) -> None:
    async with open_store("memory:") as memory:
        assert isinstance(memory, MemoryStore)
    async with open_store(tmp_path / "s.db") as sqlite:
        assert isinstance(sqlite, SqliteStore)
    schema = new_schema()
    async with open_store(f"{pg_dsn()}#schema={schema}") as pg:
        assert isinstance(pg, PostgresStore) and pg.schema == schema
    store = await open_store(pg_dsn().replace("postgresql://", "postgres://", 1),
                             schema=schema, read_only=True)
    try:
        assert isinstance(store, PostgresStore) and store.read_only
    finally:
        await store.close()
    with pytest.raises(ValueError):
        await open_store(f"{pg_dsn()}#other=x")


@pytest.mark.parametrize("name", ["Mfm", "a;drop", "pg_temp", "", "a" * 64, "a-b", 'x"y'])
def test_schema_names_are_validated(name: str) -> None:
    with pytest.raises(ValueError, match="invalid schema name"):
        PostgresStore.open("postgresql://nobody@/x", schema=name)


async def test_a_foreign_schema_is_refused(admin: psycopg.AsyncConnection[Any]) -> None:
    schema = new_schema()
    await admin.execute(f"CREATE SCHEMA {schema}")
    await admin.execute(f"CREATE TABLE {schema}.orders (id int)")
    with pytest.raises(StorageError) as err:
        await PostgresStore.open(pg_dsn(), schema=schema)
    assert err.value.info.code == "not_an_mfm_store"
    assert schema in str(err.value)


async def test_an_empty_schema_made_by_an_admin_is_used(
        admin: psycopg.AsyncConnection[Any]) -> None:
    schema = new_schema()
    await admin.execute(f"CREATE SCHEMA {schema}")
    async with PostgresStore.open(pg_dsn(), schema=schema) as store:
        assert await store.list_runs() == []


async def test_a_newer_schema_is_refused(admin: psycopg.AsyncConnection[Any]) -> None:
    schema = new_schema()
    async with PostgresStore.open(pg_dsn(), schema=schema):
        pass
    await admin.execute(f"UPDATE {schema}.mfm_meta SET schema_version = 99")
    for read_only in (False, True):
        with pytest.raises(StorageError) as err:
            await PostgresStore.open(pg_dsn(), schema=schema, read_only=read_only)
        assert err.value.info.code == "schema_too_new"
        assert "99" in str(err.value)


async def test_many_stores_creating_one_schema_at_once() -> None:
    import asyncio

    schema = new_schema()
    stores = await asyncio.gather(*(PostgresStore.open(pg_dsn(), schema=schema, pool_size=1)
                                    for _ in range(8)))
    try:
        run = RunId.new()
        assert await stores[0].append(run, 0, envs(run, 1, 1)) == 1
        assert await stores[7].head_seq(run) == 1
    finally:
        for store in stores:
            await store.close()


async def test_read_only_refuses_every_write_and_reads() -> None:
    schema = new_schema()
    run = RunId.new()
    async with PostgresStore.open(pg_dsn(), schema=schema) as store:
        await store.append(run, 0, envs(run, 1, 2))
        pid = await store.put(ArtifactKind.FACT_PAYLOAD, b"1")
    async with PostgresStore.open(pg_dsn(), schema=schema, read_only=True) as ro:
        assert await ro.head_seq(run) == 2
        assert await ro.get(pid) == b"1"
        assert (await ro.verify()).ok
        for write in (ro.append(run, 2, envs(run, 3, 1)), ro.put(ArtifactKind.OUTPUT, b"x"),
                      ro.bind_fact(run, "k", pid), ro.record_fact(run, "k", b"2"),
                      ro.gc(apply=True, min_age_seconds=0)):
            with pytest.raises(StorageError) as err:
                await write
            assert err.value.info.code == "store_read_only"
        # the server refuses too: the store's connections are in read-only transaction mode
        async with ro._pool.connection() as conn:
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                await conn.execute("INSERT INTO mfm_meta VALUES ('x', 1)")
    with pytest.raises(StorageError) as missing:
        await PostgresStore.open(pg_dsn(), schema=new_schema(), read_only=True)
    assert missing.value.info.code == "store_not_found"


async def test_durability_maps_to_synchronous_commit() -> None:
    schema = new_schema()
    for durability, expected in (("normal", "off"), ("full", "on")):
        async with PostgresStore.open(pg_dsn(), schema=schema, durability=durability) as s, \
                s._pool.connection() as conn:
            cur = await conn.execute("SHOW synchronous_commit")
            assert (await cur.fetchone()) == (expected,)


async def test_the_password_is_never_shown() -> None:
    secret = "Sup3r-s3cret-pw"
    bad_port = f"postgresql://someone:{secret}@127.0.0.1:1/db"
    with pytest.raises(StorageError) as err:
        await PostgresStore.open(bad_port, schema="mfm", timeout=2)
    assert err.value.info.code == "store_unavailable" and err.value.info.retryable
    assert secret not in str(err.value) and "someone@127.0.0.1:1/db" in str(err.value)
    with pytest.raises(StorageError) as invalid:
        await PostgresStore.open(f"host=x password={secret} junk", schema="mfm")
    assert secret not in str(invalid.value) and invalid.value.__cause__ is None
    with pytest.raises(StorageError) as unknown:
        await open_store(f"postgresql://u:{secret}@/db?nonsense={secret}")
    assert secret not in str(unknown.value)


async def test_rows_are_those_of_the_sqlite_file(tmp_path: Path) -> None:
    """Same events, same stored rows (kind, name, ts, checksum, CBOR body), same artifacts."""
    schema, run = new_schema(), RunId.new()
    rows: list[list[tuple[Any, ...]]] = []
    for opener in (lambda: SqliteStore.open(tmp_path / "s.db"),
                   lambda: PostgresStore.open(pg_dsn(), schema=schema)):
        async with opener() as store:
            manifest = await store.put(ArtifactKind.MANIFEST, b'{"m":1}')
            await store.append(run, 0, [EventEnvelope(run, 1, None,
                                                      RunStarted("op", manifest, manifest))])
            await store.append(run, 1, envs(run, 2, 3))
            await store.record_fact(run, "k", b'{"v":2}')
    import sqlite3

    with sqlite3.connect(tmp_path / "s.db") as conn:
        rows.append(conn.execute("SELECT seq, ts_millis, kind, name, checksum, body FROM events"
                                 " ORDER BY seq").fetchall())
        rows.append(conn.execute("SELECT fact_key, payload_id, seq, checksum FROM fact_bindings"
                                 ).fetchall())
        rows.append(conn.execute("SELECT id, kind, size, checksum, data FROM artifacts"
                                 " ORDER BY id").fetchall())
    async with await psycopg.AsyncConnection.connect(pg_dsn()) as pg:
        for sql in (f"SELECT seq, ts_millis, kind, name, checksum, body FROM {schema}.events"
                    " ORDER BY seq",
                    f"SELECT fact_key, payload_id, seq, checksum FROM {schema}.fact_bindings",
                    f"SELECT id, kind, size, checksum, data FROM {schema}.artifacts"
                    " ORDER BY id"):
            cur = await pg.execute(sql)
            rows.append([tuple(bytes(v) if isinstance(v, memoryview) else v for v in r)
                         for r in await cur.fetchall()])
    assert rows[0] == rows[3] and rows[1] == rows[4] and rows[2] == rows[5]
    assert len(rows[0]) == 5


async def test_events_and_bindings_are_append_only(
        admin: psycopg.AsyncConnection[Any]) -> None:
    schema, run = new_schema(), RunId.new()
    async with PostgresStore.open(pg_dsn(), schema=schema) as store:
        await store.record_fact(run, "k", b"1")
    for sql in (f"UPDATE {schema}.events SET seq = 5", f"DELETE FROM {schema}.events",
                f"TRUNCATE {schema}.events CASCADE", f"DELETE FROM {schema}.fact_bindings",
                f"UPDATE {schema}.fact_bindings SET seq = 2"):
        with pytest.raises(psycopg.errors.RestrictViolation, match="append-only"):
            await admin.execute(sql)


async def test_flipped_bytes_are_found_by_reads_and_verify(
        admin: psycopg.AsyncConnection[Any]) -> None:
    schema, run = new_schema(), RunId.new()
    async with PostgresStore.open(pg_dsn(), schema=schema) as store:
        await store.append(run, 0, envs(run, 1, 3))
        pid = await store.put(ArtifactKind.OUTPUT, b"precious bytes")
        await store.record_fact(run, "k", b"2")
        await admin.execute(f"UPDATE {schema}.artifacts SET data = 'Precious bytes'::bytea"
                            " WHERE id = %s", (pid,))
        async with admin.transaction():
            # bypass the append-only triggers the way a disk fault would
            await admin.execute("SET LOCAL session_replication_role = replica")
            await admin.execute(f"UPDATE {schema}.events SET body = body || '\\x00'::bytea"
                                " WHERE seq = 2")
            await admin.execute(f"UPDATE {schema}.fact_bindings SET fact_key = 'j'")
        await admin.execute(f"UPDATE {schema}.runs SET status = 'failed', op_id = 'x',"
                            " head_seq = 9")
        await admin.execute(f"ALTER TABLE {schema}.events DISABLE TRIGGER events_append_only")
        with pytest.raises(CorruptionError):
            await store.get(pid)
        with pytest.raises(CorruptionError):
            await store.read_range(run)
        with pytest.raises(CorruptionError):
            await store.facts(run)
        report = await store.verify()
        kinds = {p.kind for p in report.problems}
        assert {"artifact_checksum", "artifact_hash", "event_checksum", "binding_checksum",
                "head_mismatch", "run_status", "run_op_id", "schema"} <= kinds, str(report)


async def test_killed_connections_give_coded_errors_and_the_pool_recovers(
        admin: psycopg.AsyncConnection[Any]) -> None:
    schema, run = new_schema(), RunId.new()
    kill = ("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = 'mfm_store' AND pid <> pg_backend_pid()")
    async with PostgresStore.open(pg_dsn(), schema=schema, pool_size=2) as store:
        await store.append(run, 0, envs(run, 1, 1))
        await admin.execute(kill)
        assert await store.head_seq(run) == 1  # a read is retried once on a new connection
        await admin.execute(kill)
        codes = []
        for _ in range(5):  # a write is not: its outcome is unknown
            try:
                await store.append(run, 1, envs(run, 2, 1))
                break
            except StorageError as exc:
                assert exc.info.retryable, exc
                codes.append(exc.info.code)
        assert codes and set(codes) <= {"commit_unknown", "store_unavailable"}
        assert len(codes) <= 2  # at most one per pooled connection
        assert await store.head_seq(run) == 2
        assert (await store.verify()).ok


async def test_a_least_privilege_role(admin: psycopg.AsyncConnection[Any]) -> None:
    """The grants the README lists are enough for every operation, and no more."""
    schema, role = new_schema(), f"app_{uuid.uuid4().hex[:8]}"
    async with PostgresStore.open(pg_dsn(), schema=schema):
        pass  # the owner creates (and later migrates) the schema
    for sql in (f"CREATE ROLE {role} LOGIN",
                f"GRANT USAGE ON SCHEMA {schema} TO {role}",
                f"GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {role}",
                f"GRANT INSERT, UPDATE ON {schema}.runs TO {role}",
                f"GRANT INSERT ON {schema}.events, {schema}.fact_bindings TO {role}",
                f"GRANT INSERT, UPDATE, DELETE ON {schema}.artifacts TO {role}",
                f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA {schema} TO {role}"):
        await admin.execute(sql)
    cur = await admin.execute("SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles"
                              " WHERE rolname = %s", (role,))
    assert await cur.fetchone() == (False, False, False)
    dsn = psycopg.conninfo.make_conninfo(pg_dsn(), user=role, password="")
    run = RunId.new()
    async with PostgresStore.open(dsn, schema=schema) as store:
        manifest = await store.put(ArtifactKind.MANIFEST, b'{"m":1}')
        await store.append(run, 0, [EventEnvelope(run, 1, None,
                                                  RunStarted("op", manifest, manifest))])
        assert (await store.record_fact(run, "k", b"1")).inserted
        loose = await store.put(ArtifactKind.OUTPUT, b"unreferenced")
        assert (await store.bind_fact(run, "j", manifest)).inserted
        assert (await store.verify()).ok
        assert (await store.stats())["events"] == 3
        report = await store.gc(apply=True, min_age_seconds=0)
        assert report.artifacts == [loose]
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as app:
        for sql in (f"DROP TABLE {schema}.events", f"DELETE FROM {schema}.events",
                    f"CREATE TABLE {schema}.x (i int)", f"ALTER TABLE {schema}.runs ADD y int"):
            with pytest.raises(psycopg.Error):
                await app.execute(sql)
    with pytest.raises(StorageError):  # creating a schema needs rights the role lacks
        await PostgresStore.open(dsn, schema=new_schema())


async def test_export_is_byte_identical_and_imports_into_either_backend(
        tmp_path: Path) -> None:
    """The same runs exported from SQLite and from PostgreSQL give the same bytes; an export
    of one imports into the other."""
    import io

    from mfm_store.transfer import export_jsonl, import_jsonl

    runs = [RunId.new(), RunId.new()]
    exports = []
    for opener in (lambda: SqliteStore.open(tmp_path / "a.db"),
                   lambda: PostgresStore.open(pg_dsn(), schema=new_schema())):
        async with opener() as store:
            for run in runs:
                manifest = await store.put(ArtifactKind.MANIFEST, b'{"m":1}')
                await store.append(run, 0, [EventEnvelope(run, 1, None,
                                                          RunStarted("op", manifest, manifest))])
                await store.append(run, 1, envs(run, 2, 3))
                await store.record_fact(run, "k", str(run).encode())
            out = io.BytesIO()
            await export_jsonl(store, out)
            exports.append(out.getvalue())
    assert exports[0] == exports[1]
    async with PostgresStore.open(pg_dsn(), schema=new_schema()) as pg:
        await import_jsonl(pg, io.BytesIO(exports[0]))
        again = io.BytesIO()
        await export_jsonl(pg, again)
        assert again.getvalue() == exports[0]
        assert (await pg.verify()).ok


async def test_missing_answers_for_many_ids_at_once() -> None:
    async with PostgresStore.open(pg_dsn(), schema=new_schema()) as store:
        have = await store.put(ArtifactKind.OUTPUT, b"here")
        absent = ["c" * 64, "d" * 64]
        assert await store.missing([have, *absent]) == set(absent)
        assert await store.missing([]) == set()
        with pytest.raises(StorageError) as err:
            await store.missing(["not an id"])
        assert err.value.info.code == "invalid_id"


async def test_a_put_of_stored_bytes_makes_them_young_again(
        admin: psycopg.AsyncConnection[Any]) -> None:
    schema, run = new_schema(), RunId.new()
    async with PostgresStore.open(pg_dsn(), schema=schema) as store:
        old = await store.put(ArtifactKind.OUTPUT, b'{"n":1}')
        await admin.execute(f"UPDATE {schema}.artifacts SET created_ms = 0")  # long ago
        assert (await store.gc(min_age_seconds=60)).artifacts == [old]
        assert await store.put(ArtifactKind.OUTPUT, b'{"n":1}') == old
        assert (await store.gc(min_age_seconds=60)).artifacts == []
        await admin.execute(f"UPDATE {schema}.artifacts SET created_ms = 0")
        assert (await store.record_fact(run, "k", b'{"n":1}')).inserted  # stored bytes again
        await store.append(run, 1, [EventEnvelope(run, 2, None, DomainEvent("x", {}))])
        assert (await store.gc(min_age_seconds=60)).artifacts == []
        cur = await admin.execute(f"SELECT created_ms > 0 FROM {schema}.artifacts")
        assert await cur.fetchone() == (True,)
