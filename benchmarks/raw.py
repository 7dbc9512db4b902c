"""The physical limit: plain ``sqlite3`` writing the same rows as our store.

The file is created by opening and closing a ``SqliteStore`` (the store creates its own schema,
from the numbered SQL files in ``schema/``), so both sides write into identical tables, indexes
and triggers. Every logical write is one ``BEGIN IMMEDIATE ... COMMIT`` (or one transaction per
batch where a side says so) at the same ``synchronous`` level. Row checksums are the file's
version-3 checksums (README, "Schema"), computed here from their documented definition; event
bodies are pre-encoded CBOR and every checksum that does not depend on the time of the write is
computed before the clock starts, so the baseline pays for little but SQLite.
"""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import cbor2
import xxhash

from mfm_store.events import DomainEvent, EventEnvelope, encode_event
from mfm_store.sqlite import SqliteStore

__all__ = ["RawDb", "RawFact", "artifact_row", "event_rows", "raw_fact"]

_SYNCHRONOUS = {"full": "FULL", "normal": "NORMAL", "off": "OFF"}
_I64 = 1 << 63
_U64 = 1 << 64
_h = xxhash.xxh3_64_intdigest

# The writes our store makes, row for row (see schema/ and mfm_store/sqlite/_queries.py).
RUN_INSERT = ("INSERT INTO runs (run_id, head_seq, created_ms, updated_ms, checksum)"
              " VALUES (?, 0, ?, ?, 0)")
RUN_HEAD = "SELECT run_pk, head_seq FROM runs WHERE run_id = ?"
RUN_ADVANCE = "UPDATE runs SET head_seq = ?, updated_ms = ?, checksum = ? WHERE run_pk = ?"
EVENT_INSERT = ("INSERT INTO events (run_pk, seq, ts_millis, kind, name, checksum, body)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)")
BINDING_INSERT = ("INSERT INTO fact_bindings (run_pk, fact_key, payload_id, seq, checksum)"
                  " VALUES (?, ?, ?, ?, ?)")
ARTIFACT_INSERT = ("INSERT INTO artifacts (id, kind, size, checksum, created_ms, data)"
                   " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING")
EVENT_BODIES = ("SELECT e.seq, e.ts_millis, e.body FROM events AS e JOIN runs AS r USING (run_pk)"
                " WHERE r.run_id = ? ORDER BY e.seq")
BINDINGS = ("SELECT b.fact_key, b.payload_id FROM fact_bindings AS b JOIN runs AS r"
            " USING (run_pk) WHERE r.run_id = ?")

EventRow = tuple[int, int | None, str, str | None, int, bytes]


def _signed(value: int) -> int:
    return value - _U64 if value >= _I64 else value


def _text(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def event_sum(run_id: str, seq: int, ts: int | None, kind: str, name: str | None,
              body: bytes) -> int:
    return _signed(_h(body, _h(_text(f"{run_id}\0{seq}\0{ts!r}\0{kind}\0{name!r}"))))


def artifact_sum(artifact_id: str, kind: str, size: int, data: bytes) -> int:
    return _signed(_h(data, _h(_text(f"{artifact_id}\0{kind}\0{size}"))))


def binding_sum(run_id: str, key: str, payload_id: str, seq: int) -> int:
    return _signed(_h(_text(f"{run_id}\0{key!r}\0{payload_id}\0{seq}")))


def run_sum(run_pk: int, run_id: str, op_id: str | None, status: str, head: int,
            created: int, updated: int) -> int:
    return _signed(_h(_text(
        f"{run_pk}\0{run_id}\0{op_id!r}\0{status}\0{head}\0{created}\0{updated}")))


def event_rows(envelopes: Sequence[EventEnvelope]) -> list[EventRow]:
    """Pre-encode envelopes as event rows (without ``run_pk``), outside any timing."""
    rows: list[EventRow] = []
    for env in envelopes:
        body = encode_event(env.event)
        if isinstance(env.event, DomainEvent):
            kind, name = "Domain", env.event.name
        else:
            kind, name = type(env.event).__name__, None
        rows.append((env.seq, env.ts_millis, kind, name,
                     event_sum(str(env.run_id), env.seq, env.ts_millis, kind, name, body), body))
    return rows


def _now() -> int:
    return time.time_ns() // 1_000_000


def _create(path: Path) -> None:
    """Make ``path`` an empty store file, schema and all, by opening a store on it."""

    async def open_close() -> None:
        store = await SqliteStore.open(path)
        await store.close()

    # On a thread of its own: the caller may be running an event loop.
    failure: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(open_close())
        except BaseException as exc:  # handed to the caller below
            failure.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]


class _Run:
    """A run row as the raw side writes it (what it needs for the row's checksum)."""

    __slots__ = ("created", "head", "pk", "run_id")

    def __init__(self, pk: int, run_id: str, created: int, head: int = 0) -> None:
        self.pk, self.run_id, self.created, self.head = pk, run_id, created, head


class RawFact:
    """One fact's rows, prepared outside the timing: the payload artifact row, the binding's
    key and checksum, the ``fact_recorded`` event row."""

    __slots__ = ("artifact", "binding_sum", "event", "key", "run")

    def __init__(self, run: _Run, artifact: tuple[Any, ...], key: str, event: EventRow) -> None:
        self.run, self.artifact, self.key, self.event = run, artifact, key, event
        self.binding_sum = binding_sum(run.run_id, key, artifact[0], event[0])


def raw_fact(run: _Run, payload: bytes, kind: str, key: str, event: EventRow) -> RawFact:
    return RawFact(run, artifact_row(kind, payload), key, event)


class RawDb:
    """One plain ``sqlite3`` connection in autocommit mode, transactions spelled out."""

    def __init__(self, path: Path, durability: str = "full") -> None:
        self.path = path
        if not path.exists():
            _create(path)
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA busy_timeout = 10000")
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.execute(f"PRAGMA synchronous = {_SYNCHRONOUS[durability]}")
        self._runs: dict[int, _Run] = {}

    def close(self) -> None:
        self.conn.close()

    def new_run(self, run_id: str) -> int:
        now = _now()
        self.conn.execute("BEGIN IMMEDIATE")
        pk = self.conn.execute(RUN_INSERT, (run_id, now, now)).lastrowid
        self.conn.execute("COMMIT")
        assert pk is not None
        self._runs[pk] = _Run(pk, run_id, now)
        return pk

    def run(self, run_pk: int) -> _Run:
        """What the raw side knows of a run it created (for :func:`raw_fact`)."""
        return self._runs[run_pk]

    def _advance(self, run: _Run, head: int) -> tuple[int, int, int, int]:
        now = _now()
        run.head = head
        return (head, now, run_sum(run.pk, run.run_id, None, "running", head, run.created, now),
                run.pk)

    def append(self, run_pk: int, rows: Sequence[EventRow], check_head: str | None = None) -> None:
        """One transaction: the event rows and the run's new head (with its checksum).

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
        c.execute(RUN_ADVANCE, self._advance(self._runs[run_pk], rows[-1][0]))
        c.execute("COMMIT")

    def record_fact(self, fact: RawFact) -> None:
        """One transaction: payload artifact, binding, ``fact_recorded`` event, run head."""
        c = self.conn
        run, event = fact.run, fact.event
        c.execute("BEGIN IMMEDIATE")
        c.execute(ARTIFACT_INSERT, fact.artifact)
        c.execute(BINDING_INSERT, (run.pk, fact.key, fact.artifact[0], event[0],
                                   fact.binding_sum))
        c.execute(EVENT_INSERT, (run.pk, *event))
        c.execute(RUN_ADVANCE, self._advance(run, event[0]))
        c.execute("COMMIT")

    def record_facts(self, facts: Sequence[RawFact]) -> None:
        """The rows of many facts in one transaction, one ``executemany`` per statement."""
        c = self.conn
        heads: dict[int, tuple[_Run, int]] = {}
        for f in facts:
            heads[f.run.pk] = (f.run, f.event[0])
        c.execute("BEGIN IMMEDIATE")
        c.executemany(ARTIFACT_INSERT, [f.artifact for f in facts])
        c.executemany(BINDING_INSERT, [(f.run.pk, f.key, f.artifact[0], f.event[0],
                                        f.binding_sum) for f in facts])
        c.executemany(EVENT_INSERT, [(f.run.pk, *f.event) for f in facts])
        c.executemany(RUN_ADVANCE, [self._advance(run, head) for run, head in heads.values()])
        c.execute("COMMIT")

    def put(self, kind: str, data: bytes, checksum: int | None = None) -> str:
        """SHA-256 of the bytes (the content id), then one transaction inserting the row
        (``checksum``: the row's, if computed beforehand)."""
        aid = hashlib.sha256(data).hexdigest()
        if checksum is None:
            checksum = artifact_sum(aid, kind, len(data), data)
        c = self.conn
        c.execute("BEGIN IMMEDIATE")
        c.execute(ARTIFACT_INSERT, (aid, kind, len(data), checksum, _now(), data))
        c.execute("COMMIT")
        return aid


def artifact_row(kind: str, data: bytes) -> tuple[str, str, int, int, int, bytes]:
    aid = hashlib.sha256(data).hexdigest()
    return (aid, kind, len(data), artifact_sum(aid, kind, len(data), data), _now(), data)


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
