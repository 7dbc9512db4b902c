"""``SqliteStore``: runs, events, fact bindings and artifacts in one SQLite file (SPEC §5.2-5.4)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import sqlite3
import warnings
from collections.abc import AsyncIterator, Coroutine, Generator, Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import aiosqlite
import xxhash

from .. import _rules
from ..errors import (
    CODE_INVALID_ENVELOPES,
    CODE_READ_ONLY,
    CODE_STORE_CLOSED,
    CorruptionError,
    NotFoundError,
    StorageError,
)
from ..events import (
    DOMAIN_FACT_RECORDED,
    DomainEvent,
    EventEnvelope,
    decode_event,
    encode_event,
)
from ..ids import ArtifactId, FactKey, OpId, RunId
from ..stores import ArtifactKind, FactBinding, ProgressFn, RunSummary
from . import _queries as q
from ._backup import write_backup
from ._errors import map_errors
from ._gc import GcReport, refs_since, unreferenced
from ._schema import check_and_migrate, inspect_file
from ._verify import VerifyReport, verify_connection
from ._writer import GroupCommitWriter

__all__ = ["Durability", "SqliteStore"]

Durability = Literal["full", "normal"]
_SYNCHRONOUS = {"full": "PRAGMA synchronous = FULL", "normal": "PRAGMA synchronous = NORMAL"}
_I64 = 1 << 63


def checksum(data: bytes, seed: int = 0) -> int:
    """xxh3-64 of ``data`` as a signed 64-bit integer (SQLite's INTEGER range)."""
    value: int = xxhash.xxh3_64_intdigest(data, seed)
    return value - (1 << 64) if value >= _I64 else value


class SqliteStore:
    """The single-file store. Open with ``await SqliteStore.open(path)`` or
    ``async with SqliteStore.open(path) as store``.

    Durability: with ``durability="full"`` (default) every acknowledged append, binding or put
    is fsynced and survives power loss. With ``"normal"`` it survives a crash of the process but
    the last commits may be lost on power loss or an OS crash.

    Writes from concurrent tasks are group-committed; each caller is answered after the commit
    that holds its write. Several processes may open the same file: writers wait for each other
    up to ``busy_timeout`` seconds, then get ``StorageError`` (code ``store_busy``).
    """

    def __init__(self, path: Path, uri: str, reader: aiosqlite.Connection,
                 writer: GroupCommitWriter | None) -> None:
        self._path = path
        self._uri = uri
        self._reader = reader
        self._writer = writer
        self._closed = False
        self._run_pks: dict[str, int] = {}

    # opening and closing

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, durability: Durability = "full",
             read_only: bool = False, busy_timeout: float = 10.0) -> _Opening:
        """Open (creating and migrating if needed) the store at ``path``.

        ``read_only=True`` never writes to the file or its folder (no WAL, no migration);
        mutating methods then raise ``StorageError`` (code ``store_read_only``). It is meant
        for copies and files no process is writing. Raises ``StorageError`` with code
        ``not_an_mfm_store`` for a foreign file, ``schema_too_new`` for a newer schema,
        ``CorruptionError`` for a truncated file.
        """
        if durability not in _SYNCHRONOUS:
            raise ValueError(f"durability must be 'full' or 'normal', not {durability!r}")
        return _Opening(cls._open(Path(path), durability, read_only, busy_timeout))

    @classmethod
    async def _open(cls, path: Path, durability: Durability, read_only: bool,
                    busy_timeout: float) -> SqliteStore:
        timeout_ms = int(busy_timeout * 1000)
        uri, writer_conn = await asyncio.to_thread(
            _prepare, path, durability, read_only, timeout_ms)
        try:
            with map_errors(str(path)):
                reader = await aiosqlite.connect(uri, uri=True, isolation_level=None,
                                                 timeout=busy_timeout)
                if not read_only:
                    await reader.execute("PRAGMA query_only = ON")
        except BaseException:
            if writer_conn is not None:
                writer_conn.close()
            raise
        writer = None if writer_conn is None else GroupCommitWriter(
            writer_conn, str(path), timeout_ms)
        return cls(path, uri, reader, writer)

    @property
    def path(self) -> Path:
        return self._path

    @property
    def read_only(self) -> bool:
        return self._writer is None

    async def close(self) -> None:
        """Finish pending writes and close. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._writer is not None:
                await self._writer.drain()
        finally:
            await self._reader.close()
            if self._writer is not None:
                self._writer.close()

    async def __aenter__(self) -> SqliteStore:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            warnings.warn(f"SqliteStore for {self._path} was never closed", ResourceWarning,
                          stacklevel=1)

    def _writable(self) -> GroupCommitWriter:
        """The writer, or ``StorageError`` if the store is closed or read-only."""
        if self._writer is None or self._closed:
            if self._closed:
                raise StorageError(f"{self._path}: store is closed", code=CODE_STORE_CLOSED)
            raise StorageError(f"{self._path}: store is open read-only", code=CODE_READ_ONLY)
        return self._writer

    async def _fetchall(self, sql: str, params: Sequence[Any]) -> list[Any]:
        if self._closed:
            raise StorageError(f"{self._path}: store is closed", code=CODE_STORE_CLOSED)
        with map_errors(str(self._path)):
            return list(await self._reader.execute_fetchall(sql, params))

    # events

    async def head_seq(self, run_id: RunId) -> int:
        rows = await self._fetchall(q.RUN_HEAD, (str(run_id),))
        return int(rows[0][1]) if rows else 0

    async def append(self, run_id: RunId, expected_seq: int,
                     envelopes: Sequence[EventEnvelope]) -> int:
        envelopes = list(envelopes)
        _rules.check_envelopes(run_id, expected_seq, envelopes)
        rows, bindings, op_id, status = _event_rows(run_id, envelopes)
        writer = self._writer
        if writer is None or self._closed:
            writer = self._writable()  # raises
        rid = str(run_id)
        known_pk = self._run_pks.get(rid)
        if (known_pk is not None and rows and not bindings
                and op_id is None and status is None):
            op: _Append = _KnownRunAppend(rid, expected_seq, None, None, rows, bindings,
                                          known_pk)
        else:
            op = _Append(rid, expected_seq, op_id, status, rows, bindings)
        result: tuple[int, int | None] = await writer.run(op)
        head, pk = result
        if known_pk is None and pk is not None:
            self._run_pks[rid] = pk  # committed: a run's key never changes
        return head

    def _decode(self, run_id: RunId, row: Sequence[Any]) -> EventEnvelope:
        seq, ts, stored_sum, body = row
        if checksum(body, seq) != stored_sum:
            raise CorruptionError(f"{self._path}: event {seq} of run {run_id} fails its checksum")
        try:
            event = decode_event(body)
        except Exception as exc:
            raise CorruptionError(
                f"{self._path}: event {seq} of run {run_id} cannot be decoded: {exc}") from exc
        return EventEnvelope(run_id, seq, ts, event)

    async def read_range(self, run_id: RunId, from_seq: int = 1,
                         to_seq: int | None = None) -> list[EventEnvelope]:
        stop = _I64 - 1 if to_seq is None else to_seq
        rows = await self._fetchall(q.EVENT_RANGE, (str(run_id), max(from_seq, 1), stop, -1))
        return [self._decode(run_id, row) for row in rows]

    async def iter_events(self, run_id: RunId, from_seq: int = 1, to_seq: int | None = None,
                          *, page_size: int = 1000) -> AsyncIterator[EventEnvelope]:
        """Stream events in pages of ``page_size`` rows: memory stays bounded by one page."""
        if page_size < 1:
            raise ValueError(f"page_size must be positive, not {page_size}")
        start = max(from_seq, 1)
        stop = _I64 - 1 if to_seq is None else to_seq
        rid = str(run_id)
        while start <= stop:
            rows = await self._fetchall(q.EVENT_RANGE, (rid, start, stop, page_size))
            for row in rows:
                yield self._decode(run_id, row)
            if len(rows) < page_size:
                return
            start = rows[-1][0] + 1

    async def list_runs(self) -> list[RunSummary]:
        return [
            RunSummary(run_id=RunId.parse(rid), op_id=None if op is None else OpId(op),
                       status=status, head_seq=head, created_millis=created,
                       updated_millis=updated)
            for rid, op, status, head, created, updated in await self._fetchall(q.RUN_LIST, ())
        ]

    # artifacts

    async def put(self, kind: ArtifactKind, data: bytes) -> ArtifactId:
        if not isinstance(kind, ArtifactKind):
            raise StorageError(f"kind must be an ArtifactKind, got {kind!r}")
        data = bytes(data)
        aid = hashlib.sha256(data).hexdigest()
        row = (aid, str(kind), len(data), checksum(data), _rules.now_millis(), data)

        def op(cur: sqlite3.Cursor) -> None:
            cur.execute(q.ARTIFACT_INSERT, row)

        await self._writable().run(op)
        return ArtifactId(aid)

    async def get(self, artifact_id: ArtifactId) -> bytes:
        rows = await self._fetchall(q.ARTIFACT_GET, (artifact_id,))
        if not rows:
            raise NotFoundError(f"artifact not found: {artifact_id}")
        stored_sum, data = rows[0]
        if checksum(data) != stored_sum:
            raise CorruptionError(f"{self._path}: artifact {artifact_id} fails its checksum")
        return bytes(data)

    async def exists(self, artifact_id: ArtifactId) -> bool:
        return bool(await self._fetchall(q.ARTIFACT_EXISTS, (artifact_id,)))

    # facts

    async def bind_fact(self, run_id: RunId, key: FactKey, payload_id: ArtifactId, *,
                        expected_seq: int | None = None) -> FactBinding:
        return await self._bind(run_id, key, ArtifactId(payload_id), expected_seq, None)

    async def record_fact(self, run_id: RunId, key: FactKey, data: bytes, *,
                          expected_seq: int | None = None) -> FactBinding:
        data = bytes(data)
        aid = ArtifactId(hashlib.sha256(data).hexdigest())
        row = (aid, str(ArtifactKind.FACT_PAYLOAD), len(data), checksum(data),
               _rules.now_millis(), data)
        return await self._bind(run_id, key, aid, expected_seq, row)

    async def _bind(self, run_id: RunId, key: FactKey, payload_id: ArtifactId,
                    expected_seq: int | None, artifact_row: tuple[Any, ...] | None
                    ) -> FactBinding:
        if not isinstance(key, str):
            raise StorageError(f"fact key must be a string, got {key!r}")
        body = encode_event(_rules.fact_recorded_event(key, payload_id))
        rid = str(run_id)

        def op(cur: sqlite3.Cursor) -> FactBinding:
            row = cur.execute(q.RUN_HEAD, (rid,)).fetchone()
            if row is not None:
                bound = cur.execute(q.BINDING_GET, (row[0], key)).fetchone()
                if bound is not None:
                    return FactBinding(ArtifactId(bound[0]), False, bound[1])
            if artifact_row is None and cur.execute(
                    q.ARTIFACT_EXISTS, (payload_id,)).fetchone() is None:
                raise NotFoundError(f"fact payload artifact not found: {payload_id}")
            head = row[1] if row else 0
            if expected_seq is not None and head != expected_seq:
                raise _rules.head_moved(rid, expected_seq, head)
            # Checks are done; writes follow.
            now = _rules.now_millis()
            if artifact_row is not None:
                cur.execute(q.ARTIFACT_INSERT, artifact_row)
            pk = row[0] if row else _new_run(cur, rid, now)
            seq = head + 1
            cur.execute(q.EVENT_INSERT,
                         (pk, seq, None, "Domain", "fact_recorded", checksum(body, seq), body))
            cur.execute(q.BINDING_INSERT, (pk, key, payload_id, seq))
            cur.execute(q.RUN_ADVANCE, (seq, now, None, None, pk))
            return FactBinding(payload_id, True, seq)

        result: FactBinding = await self._writable().run(op)
        return result

    async def get_fact(self, run_id: RunId, key: FactKey) -> ArtifactId | None:
        rows = await self._fetchall(q.BINDING_GET_BY_RUN_ID, (str(run_id), key))
        return ArtifactId(rows[0][0]) if rows else None

    async def facts(self, run_id: RunId) -> dict[FactKey, ArtifactId]:
        rows = await self._fetchall(q.BINDINGS_OF_RUN, (str(run_id),))
        return {key: ArtifactId(pid) for key, pid in rows}


    # maintenance: each runs on its own connection in a worker thread

    async def _in_thread(self, fn: Any, *args: Any) -> Any:
        if self._closed:
            raise StorageError(f"{self._path}: store is closed", code=CODE_STORE_CLOSED)
        return await asyncio.to_thread(_with_connection, self._uri, str(self._path), fn, *args)

    async def verify(self, *, progress: ProgressFn | None = None) -> VerifyReport:
        """Check every checksum, hash, seq, head, binding and artifact reference.

        Reports every problem found (never stops at the first); reads only.
        ``progress("verify", n, total)`` is called on the event loop as rows are checked.
        """
        tick = None
        if progress is not None:
            counts = await self.stats()
            total = counts["artifacts"] + counts["events"] + counts["fact_bindings"]
            loop = asyncio.get_running_loop()
            progress("verify", 0, total)

            def tick(n: int) -> None:
                loop.call_soon_threadsafe(progress, "verify", n, total)

        result: VerifyReport = await self._in_thread(verify_connection, checksum, tick)
        return result

    async def backup(self, dest: str | os.PathLike[str]) -> Path:
        """Write a consistent copy of the store to the new file ``dest`` while writers continue.

        The copy is one self-contained file (rollback journal, no ``-wal``), ready to be opened
        read-only elsewhere, with each run's events stored together so that a replay of the
        copy reads few pages. It appears at ``dest`` only once complete and synced. Raises
        ``StorageError`` if ``dest`` exists or its folder does not. Returns the copy's path.
        """
        if self._closed:
            raise StorageError(f"{self._path}: store is closed", code=CODE_STORE_CLOSED)
        target: Path = await asyncio.to_thread(write_backup, self._uri, str(self._path),
                                               Path(dest))
        return target

    async def stats(self) -> dict[str, int]:
        """Counts of runs, events, bindings, artifacts; artifact and file bytes."""
        (runs, events, bindings, artifacts, artifact_bytes), = await self._fetchall(q.STATS, ())
        size = self._path.stat().st_size
        wal = Path(f"{self._path}-wal")
        return {"runs": runs, "events": events, "fact_bindings": bindings,
                "artifacts": artifacts, "artifact_bytes": artifact_bytes, "file_bytes": size,
                "wal_bytes": wal.stat().st_size if wal.exists() else 0}

    async def iter_artifacts(self, ids: Iterable[str] | None = None
                             ) -> AsyncIterator[tuple[ArtifactId, ArtifactKind, bytes]]:
        """Every artifact (or those of ``ids`` the store holds) as ``(id, kind, bytes)``, in
        id order, one at a time; each is checked as by :meth:`get`."""
        if ids is None:
            metas = [(aid, kind) for aid, kind, _s, _c in await self._fetchall(q.ARTIFACT_META, ())]
        else:
            metas = []
            for aid in sorted(set(ids)):
                rows = await self._fetchall(q.ARTIFACT_KIND, (aid,))
                if rows:
                    metas.append((aid, rows[0][0]))
        for aid, kind in metas:
            yield ArtifactId(aid), ArtifactKind.parse(kind), await self.get(aid)

    async def gc(self, *, apply: bool = False, min_age_seconds: float = 3600.0) -> GcReport:
        """Find (and with ``apply=True`` delete) artifacts that no run references.

        Referenced: fact binding payloads and every artifact a kernel event or a domain
        event's ``payload_ref`` names. Artifacts younger than ``min_age_seconds`` are kept, so
        that a payload put just before its binding is never collected. The scan runs without
        blocking writers; the delete re-checks, in its write transaction, everything written
        since the scan.
        """
        cutoff = _rules.now_millis() - int(min_age_seconds * 1000)
        found, heads = await self._in_thread(unreferenced, cutoff)
        candidates: dict[str, int] = dict(found)
        if apply and candidates:

            def op(cur: sqlite3.Cursor) -> None:
                for pk, head in cur.execute(q.RUN_HEADS).fetchall():
                    since = heads.get(pk, 0)
                    if head > since:
                        for ref in refs_since(cur, pk, since):
                            candidates.pop(ref, None)
                cur.executemany(q.ARTIFACT_DELETE, [(aid, cutoff) for aid in candidates])

            await self._writable().run(op)
        return GcReport(artifacts=sorted(ArtifactId(a) for a in candidates),
                        bytes=sum(candidates.values()), applied=apply)


def _with_connection(uri: str, where: str, fn: Any, *args: Any) -> Any:
    with map_errors(where):
        conn = sqlite3.connect(uri, uri=True, isolation_level=None)
        try:
            return fn(conn, *args)
        finally:
            conn.close()


def _event_rows(run_id: RunId, envelopes: list[EventEnvelope]
                ) -> tuple[list[tuple[Any, ...]], dict[str, tuple[ArtifactId, int]],
                           str | None, str | None]:
    """Encode checked envelopes as event rows ``(seq, ts, kind, name, checksum, body)``.

    Also returns the fact bindings their ``fact_recorded`` events make (key -> payload, seq)
    and the op id and status the run takes. Raises ``StorageError`` (``invalid_envelopes``)
    if an event cannot be stored, or ``ConcurrencyError`` for two bindings of one key.
    """
    rows: list[tuple[Any, ...]] = []
    bindings: dict[str, tuple[ArtifactId, int]] = {}
    op_id: str | None = None
    status: str | None = None
    for env in envelopes:
        event, seq = env.event, env.seq
        try:
            body = encode_event(event)
        except Exception as exc:
            raise StorageError(f"event {seq} of run {run_id} cannot be encoded: {exc}",
                               code=CODE_INVALID_ENVELOPES) from exc
        if type(event) is DomainEvent:
            name = event.name
            rows.append((seq, env.ts_millis, "Domain", name, checksum(body, seq), body))
            if name == DOMAIN_FACT_RECORDED:
                binding = _rules.fact_binding_of(event)
                if binding is not None:
                    key, pid = binding
                    if key not in bindings:
                        bindings[key] = (pid, seq)
                    elif bindings[key][0] != pid:
                        raise _rules.binding_conflict(run_id, key, bindings[key][0], pid)
            continue
        rows.append((seq, env.ts_millis, type(event).__name__, None, checksum(body, seq), body))
        op_id = _rules.op_id_of(event) or op_id
        status = _rules.status_after(event) or status
    return rows, bindings, op_id, status


def _new_run(cur: sqlite3.Cursor, rid: str, now: int) -> int:
    pk = cur.execute(q.RUN_INSERT, (rid, now, now)).lastrowid
    assert pk is not None
    return pk


class _Append:
    """The write of one ``append``: check the head and the fact bindings, then write.

    Returns ``(new head, run key)`` (run key None when nothing was written).
    """

    __slots__ = ("bindings", "expected", "new_head", "op_id", "pk", "rid", "rows", "status")

    def __init__(self, rid: str, expected: int, op_id: str | None, status: str | None,
                 rows: list[tuple[Any, ...]], bindings: dict[str, tuple[ArtifactId, int]],
                 pk: int | None = None) -> None:
        self.rid, self.expected, self.new_head = rid, expected, expected + len(rows)
        self.op_id, self.status, self.rows, self.bindings, self.pk = (
            op_id, status, rows, bindings, pk)

    def __call__(self, cur: sqlite3.Cursor) -> tuple[int, int | None]:
        rid, expected = self.rid, self.expected
        row = cur.execute(q.RUN_HEAD, (rid,)).fetchone()
        head = row[1] if row else 0
        if head != expected:
            raise _rules.head_moved(rid, expected, head)
        if not self.rows:
            return int(head), None
        new_bindings = []
        for key, (pid, seq) in self.bindings.items():
            bound = row and cur.execute(q.BINDING_GET, (row[0], key)).fetchone()
            if not bound:
                new_bindings.append((key, pid, seq))
            elif bound[0] != pid:
                raise _rules.binding_conflict(rid, key, bound[0], pid)
        # Checks are done; writes follow (an op must not fail after it wrote).
        now = _rules.now_millis()
        pk = row[0] if row else _new_run(cur, rid, now)
        for key, pid, seq in new_bindings:
            cur.execute(q.BINDING_INSERT, (pk, key, pid, seq))
        self._insert_events(cur, pk)
        cur.execute(q.RUN_ADVANCE, (self.new_head, now, self.op_id, self.status, pk))
        return self.new_head, pk

    def _insert_events(self, cur: sqlite3.Cursor, pk: int) -> None:
        if len(self.rows) == 1:
            cur.execute(q.EVENT_INSERT, (pk, *self.rows[0]))
        else:
            cur.executemany(q.EVENT_INSERT, [(pk, *r) for r in self.rows])


class _KnownRunAppend(_Append):
    """An append to a run whose key is known, of events that bind no fact and set neither op
    id nor status (the common case): one conditional UPDATE checks and moves the head, then
    the events go in. Appends of one batch run together (two ``executemany``); if any head
    moved, the general path decides."""

    __slots__ = ()

    def __call__(self, cur: sqlite3.Cursor) -> tuple[int, int | None]:
        pk = self.pk
        assert pk is not None
        moved = cur.execute(q.RUN_MOVE_HEAD,
                            (self.new_head, _rules.now_millis(), pk, self.expected))
        if moved.rowcount != 1:
            return super().__call__(cur)
        rows = self.rows
        if len(rows) == 1:
            cur.execute(q.EVENT_INSERT, (pk, *rows[0]))
        else:
            cur.executemany(q.EVENT_INSERT, [(pk, *r) for r in rows])
        return self.new_head, pk

    @staticmethod
    def run_together(cur: sqlite3.Cursor,
                     ops: list[_KnownRunAppend]) -> list[tuple[int, int | None]] | None:
        now = _rules.now_millis()
        moved = cur.executemany(q.RUN_MOVE_HEAD,
                                 [(o.new_head, now, o.pk, o.expected) for o in ops])
        if moved.rowcount != len(ops):
            return None
        cur.executemany(q.EVENT_INSERT, [(o.pk, *r) for o in ops for r in o.rows])
        return [(o.new_head, o.pk) for o in ops]


class _Opening:
    """What ``SqliteStore.open`` returns: await it, or use it as ``async with``."""

    def __init__(self, coro: Coroutine[Any, Any, SqliteStore]) -> None:
        self._coro = coro
        self._store: SqliteStore | None = None

    def __await__(self) -> Generator[Any, None, SqliteStore]:
        return self._coro.__await__()

    async def __aenter__(self) -> SqliteStore:
        self._store = await self._coro
        return self._store

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._store is not None:
            await self._store.close()


def _prepare(path: Path, durability: Durability, read_only: bool,
             busy_timeout_ms: int) -> tuple[str, sqlite3.Connection | None]:
    """Blocking part of opening: checks, migration, writer connection; returns the reader URI."""
    exists = path.exists()
    if read_only and not exists:
        raise StorageError(f"{path}: no such file", code="store_not_found")
    is_wal = inspect_file(path)[1] if exists else False
    uri = path.resolve().as_uri()
    if read_only:
        # Plain mode=ro on a WAL file creates -wal/-shm files. A file no process has open
        # (neither exists: a copy, or a closed store) is read as immutable, which needs
        # neither; a file some process has open is read through the shared WAL index.
        in_use = Path(f"{path}-wal").exists() or Path(f"{path}-shm").exists()
        uri += "?mode=ro&immutable=1" if (is_wal and not in_use) else "?mode=ro"
        with map_errors(str(path)):
            probe = sqlite3.connect(uri, uri=True, isolation_level=None)
        try:
            check_and_migrate(probe, path, read_only=True)
        finally:
            probe.close()
        return uri, None
    with map_errors(str(path)):
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                               timeout=busy_timeout_ms / 1000)
    try:
        check_and_migrate(conn, path, read_only=False)
        with map_errors(str(path)):
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute(_SYNCHRONOUS[durability])
            conn.execute("PRAGMA busy_timeout = 0")
    except BaseException:
        conn.close()
        raise
    return uri, conn
