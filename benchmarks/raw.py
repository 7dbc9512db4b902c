"""The physical limit: plain ``sqlite3`` writing the same rows as our store.

The file is created from the numbered SQL files in ``schema/`` (the store's source of truth), so
both sides write into identical tables, indexes and triggers. Every logical write is one
``BEGIN IMMEDIATE ... COMMIT`` at the same ``synchronous`` level; event bodies are pre-encoded CBOR
with pre-computed checksums, so the baseline pays for nothing but SQLite.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import cbor2

from mfm_store.events import DomainEvent, EventEnvelope, encode_event
from mfm_store.sqlite._checksums import register as register_checksum_functions
from mfm_store.sqlite._schema import APPLICATION_ID, LATEST_VERSION, migrations, statements
from mfm_store.sqlite.store import checksum  # the stored format: signed xxh3-64

__all__ = ["RawDb", "event_rows"]

_SYNCHRONOUS = {"full": "FULL", "normal": "NORMAL"}

# The writes our store makes, row for row (see schema/).
RUN_INSERT = "INSERT INTO runs (run_id, head_seq, created_ms, updated_ms) VALUES (?, 0, ?, ?)"
RUN_HEAD = "SELECT run_pk, head_seq FROM runs WHERE run_id = ?"
RUN_ADVANCE = "UPDATE runs SET head_seq = ?, updated_ms = ? WHERE run_pk = ?"
EVENT_INSERT = ("INSERT INTO events (run_pk, seq, ts_millis, kind, name, checksum, body)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)")
BINDING_INSERT = "INSERT INTO fact_bindings (run_pk, fact_key, payload_id, seq) VALUES (?, ?, ?, ?)"
ARTIFACT_INSERT = ("INSERT INTO artifacts (id, kind, size, checksum, created_ms, data)"
                   " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING")
EVENT_BODIES = ("SELECT e.seq, e.ts_millis, e.body FROM events AS e JOIN runs AS r USING (run_pk)"
                " WHERE r.run_id = ? ORDER BY e.seq")
BINDINGS = ("SELECT b.fact_key, b.payload_id FROM fact_bindings AS b JOIN runs AS r"
            " USING (run_pk) WHERE r.run_id = ?")

EventRow = tuple[int, int | None, str, str | None, int, bytes]


def event_rows(envelopes: Sequence[EventEnvelope]) -> list[EventRow]:
    """Pre-encode envelopes as event rows (without ``run_pk``), outside any timing."""
    rows: list[EventRow] = []
    for env in envelopes:
        body = encode_event(env.event)
        if isinstance(env.event, DomainEvent):
            kind, name = "Domain", env.event.name
        else:
            kind, name = type(env.event).__name__, None
        rows.append((env.seq, env.ts_millis, kind, name, checksum(body, env.seq), body))
    return rows


def _now() -> int:
    return time.time_ns() // 1_000_000


class RawDb:
    """One plain ``sqlite3`` connection in autocommit mode, transactions spelled out."""

    def __init__(self, path: Path, durability: str = "full") -> None:
        self.path = path
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA busy_timeout = 10000")
        if self.conn.execute("PRAGMA user_version").fetchone()[0] == 0:
            register_checksum_functions(self.conn)  # the migrations call them
            self.conn.execute("BEGIN IMMEDIATE")
            for _version, script in migrations():
                for statement in statements(script):
                    self.conn.execute(statement)
            self.conn.execute(f"PRAGMA user_version = {LATEST_VERSION}")
            self.conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            self.conn.execute("COMMIT")
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.execute(f"PRAGMA synchronous = {_SYNCHRONOUS[durability]}")

    def close(self) -> None:
        self.conn.close()

    def new_run(self, run_id: str) -> int:
        now = _now()
        self.conn.execute("BEGIN IMMEDIATE")
        pk = self.conn.execute(RUN_INSERT, (run_id, now, now)).lastrowid
        self.conn.execute("COMMIT")
        assert pk is not None
        return pk

    def append(self, run_pk: int, rows: Sequence[EventRow], check_head: str | None = None) -> None:
        """One transaction: the event rows and the run's new head.

        ``check_head`` (a run id) also reads the head first, as an optimistic-concurrency
        check must; the baseline proper writes without reading.
        """
        c = self.conn
        c.execute("BEGIN IMMEDIATE")
        if check_head is not None:
            c.execute(RUN_HEAD, (check_head,)).fetchone()
        if len(rows) == 1:
            c.execute(EVENT_INSERT, (run_pk, *rows[0]))
        else:
            c.executemany(EVENT_INSERT, [(run_pk, *r) for r in rows])
        c.execute(RUN_ADVANCE, (rows[-1][0], _now(), run_pk))
        c.execute("COMMIT")

    def record_fact(self, run_pk: int, artifact: tuple[Any, ...], key: str,
                    row: EventRow) -> None:
        """One transaction: payload artifact, binding, ``fact_recorded`` event, run head."""
        c = self.conn
        c.execute("BEGIN IMMEDIATE")
        c.execute(ARTIFACT_INSERT, artifact)
        c.execute(BINDING_INSERT, (run_pk, key, artifact[0], row[0]))
        c.execute(EVENT_INSERT, (run_pk, *row))
        c.execute(RUN_ADVANCE, (row[0], _now(), run_pk))
        c.execute("COMMIT")

    def put(self, kind: str, data: bytes, checksum: int) -> str:
        """SHA-256 of the bytes (the content id), then one transaction inserting the row."""
        aid = hashlib.sha256(data).hexdigest()
        c = self.conn
        c.execute("BEGIN IMMEDIATE")
        c.execute(ARTIFACT_INSERT, (aid, kind, len(data), checksum, _now(), data))
        c.execute("COMMIT")
        return aid


def artifact_row(kind: str, data: bytes) -> tuple[str, str, int, int, int, bytes]:
    return (hashlib.sha256(data).hexdigest(), kind, len(data), checksum(data), _now(), data)


def load_run(path: Path, run_id: str) -> tuple[list[Any], dict[str, str]]:
    """Open ``path`` read-only, read and CBOR-decode a run's events, and load its bindings."""
    conn = _open_ro(path)
    try:
        events = [(seq, ts, cbor2.loads(body))
                  for seq, ts, body in conn.execute(EVENT_BODIES, (run_id,))]
        facts = dict(conn.execute(BINDINGS, (run_id,)).fetchall())
    finally:
        conn.close()
    return events, facts


def stream_run(path: Path, run_id: str) -> Iterator[Any]:
    """Stream and CBOR-decode a run's events with one cursor (SQLite pages through it)."""
    conn = _open_ro(path)
    try:
        for _seq, _ts, body in conn.execute(EVENT_BODIES, (run_id,)):
            yield cbor2.loads(body)
    finally:
        conn.close()


def _open_ro(path: Path) -> sqlite3.Connection:
    """Read-only; ``immutable`` (no -wal/-shm, no locking) since the copy is quiescent."""
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro&immutable=1", uri=True)
