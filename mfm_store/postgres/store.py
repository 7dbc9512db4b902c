"""``PostgresStore``: the store contract (SPEC §5.1, §11) on a PostgreSQL server.

The same tables, rows and checksums as the SQLite file, in one schema of a database. Every
write is one statement on a pooled autocommit connection: its CTEs check and write together
in one implicit transaction, so a write costs one round trip and is atomic. Appends are
optimistic (a conditional ``UPDATE`` of the run's head; no row lock held across round trips,
no table lock, no global sequence); fact bindings are first-writer-wins by the primary key of
``fact_bindings``; concurrent commits share WAL flushes on the server (its group commit).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import warnings
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from types import TracebackType
from typing import Any, Literal

import psycopg
import psycopg_pool
from psycopg.conninfo import conninfo_to_dict

from .. import _checksums as cs
from .. import _paging, _rules
from .._opening import Opening
from ..canonical import artifact_id_for_bytes
from ..errors import (
    CODE_CONCURRENCY,
    CODE_READ_ONLY,
    CODE_STORAGE,
    CODE_STORE_CLOSED,
    CODE_STORE_UNAVAILABLE,
    ConcurrencyError,
    CorruptionError,
    NotFoundError,
    StorageError,
)
from ..events import EventEnvelope, decode_event, encode_event
from ..follow import After, Follower
from ..ids import ArtifactId, FactKey, OpId, RunId
from ..retention import PruneReport
from ..sqlite import GcReport, VerifyReport
from ..stores import ArtifactKind, FactBinding, ProgressFn, RunSummary, Store
from . import _follow
from . import _queries as q
from ._errors import describe_dsn, mapped
from ._maintain import refs_since, unreferenced, verify_connection
from ._schema import check_and_migrate, check_schema_name

__all__ = ["Durability", "PostgresStore"]

Durability = Literal["full", "normal"]
Conn = psycopg.AsyncConnection[tuple[Any, ...]]
_HEAD_CACHE = 10_000
_OPTIMISTIC_TRIES = 3
_ARTIFACT_PAGE = "SELECT id, kind FROM artifacts WHERE id > %s ORDER BY id LIMIT %s"
_ARTIFACT_PAGE_SIZE = 500  # iter_artifacts() rows per query


class PostgresStore:
    """The PostgreSQL store. Open with ``await PostgresStore.open(dsn)`` or
    ``async with PostgresStore.open(dsn) as store``.

    Durability: ``"full"`` (default) answers a write after the server flushed its commit to
    disk (``synchronous_commit`` as the server sets it, turned on if the server has it off).
    ``"normal"`` sets ``synchronous_commit = off``: a write survives a crash of the client, but
    the server may lose its last commits (well under a second's worth) if it crashes itself.

    Errors: a lost server or connection is ``StorageError`` with code ``store_unavailable``
    (retryable); a write whose commit outcome is unknown has code ``commit_unknown``
    (retryable: re-issuing any write is safe). The pool replaces broken connections by itself.
    """

    def __init__(self, pool: psycopg_pool.AsyncConnectionPool[Conn], where: str, schema: str,
                 read_only: bool) -> None:
        self._pool = pool
        self._where = where
        self._schema = schema
        self._read_only = read_only
        self._closed = False
        self._heads: dict[str, int] = {}
        self._checking: asyncio.Task[None] | None = None

    # opening and closing

    @classmethod
    def open(cls, dsn: str, *, durability: Durability = "full", read_only: bool = False,
             pool_size: int = 10, schema: str = "mfm",
             timeout: float = 10.0) -> Opening[PostgresStore]:
        """Open (creating or migrating ``schema`` if needed) the store in the database ``dsn``.

        ``schema`` is a plain lowercase identifier (``ValueError`` otherwise). ``pool_size``
        is the most connections the store holds. ``timeout`` bounds connecting and waiting
        for a pooled connection (then ``store_unavailable``). ``read_only=True`` never writes
        (read-only transactions; mutating methods raise ``store_read_only``). Raises
        ``StorageError`` with code ``not_an_mfm_store`` for a schema that is not ours,
        ``schema_too_new`` for a newer one.
        """
        check_schema_name(schema)
        if durability not in ("full", "normal"):
            raise ValueError(f"durability must be 'full' or 'normal', not {durability!r}")
        if not isinstance(pool_size, int) or pool_size < 1:
            raise ValueError(f"pool_size must be a positive integer, not {pool_size!r}")
        return Opening(cls._open(dsn, durability, read_only, pool_size, schema, timeout))

    @classmethod
    async def _open(cls, dsn: str, durability: Durability, read_only: bool, pool_size: int,
                    schema: str, timeout: float) -> PostgresStore:
        try:
            given = conninfo_to_dict(dsn)
        except Exception:
            # The parser's message may quote the DSN, password included.
            raise StorageError("invalid PostgreSQL DSN (not shown: it may hold a password)",
                               code=CODE_STORAGE) from None
        where = f"{describe_dsn(dsn)} schema {schema}"
        options = [str(given.get("options") or ""), f"-c search_path={schema}"]
        if durability == "normal":
            options.append("-c synchronous_commit=off")
        if read_only:
            options.append("-c default_transaction_read_only=on")
        kwargs: dict[str, Any] = {
            "autocommit": True,
            "options": " ".join(o for o in options if o),
            "application_name": given.get("application_name") or "mfm_store",
            "connect_timeout": given.get("connect_timeout") or str(max(1, int(timeout))),
        }
        async with mapped(where, writing=False):
            first = await psycopg.AsyncConnection.connect(dsn, **kwargs)
            try:
                await check_and_migrate(first, schema, where, read_only=read_only)
                if durability == "full":
                    cur = await first.execute("SHOW synchronous_commit")
                    row = await cur.fetchone()
                    if row is not None and row[0] == "off":
                        kwargs["options"] += " -c synchronous_commit=on"
            finally:
                await first.close()
            pool: psycopg_pool.AsyncConnectionPool[Conn] = psycopg_pool.AsyncConnectionPool(
                dsn, kwargs=kwargs, min_size=1, max_size=pool_size, open=False,
                timeout=timeout, name="mfm_store", reconnect_timeout=max(timeout * 6, 60.0))
            try:
                await pool.open(wait=True, timeout=timeout)
            except BaseException:
                await pool.close()
                raise
        return cls(pool, where, schema, read_only)

    @property
    def schema(self) -> str:
        return self._schema

    @property
    def read_only(self) -> bool:
        return self._read_only

    def __repr__(self) -> str:
        return f"<PostgresStore {self._where}{' read-only' if self._read_only else ''}>"

    async def close(self) -> None:
        """Close every pooled connection. Idempotent."""
        if self._closed:
            return
        self._closed = True
        await _follow.close_hub(self)
        if self._checking is not None:
            self._checking.cancel()
            with contextlib.suppress(BaseException):  # a cancelled check needs no report
                await self._checking
        await self._pool.close()

    async def __aenter__(self) -> PostgresStore:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            warnings.warn(f"PostgresStore for {self._where} was never closed", ResourceWarning,
                          stacklevel=1)

    # connections

    def _check_open(self) -> None:
        if self._closed:
            raise StorageError(f"{self._where}: store is closed", code=CODE_STORE_CLOSED)

    def _writable(self) -> None:
        self._check_open()
        if self._read_only:
            raise StorageError(f"{self._where}: store is open read-only", code=CODE_READ_ONLY)

    def _lost(self) -> None:
        """The server or a connection is gone: have the pool test its idle connections."""
        if self._closed or (self._checking is not None and not self._checking.done()):
            return
        self._checking = asyncio.get_running_loop().create_task(self._check_pool())

    async def _check_pool(self) -> None:
        with contextlib.suppress(Exception):  # the next caller gets the coded error
            await self._pool.check()

    @asynccontextmanager
    async def _conn(self, *, writing: bool) -> AsyncIterator[Conn]:
        """A pooled connection; psycopg errors inside become coded ``StorageError``s."""
        self._check_open()
        async with mapped(self._where, writing=False, on_lost=self._lost):
            conn = await self._pool.getconn()
        try:
            async with mapped(self._where, writing=writing, on_lost=self._lost):
                yield conn
        finally:
            await self._pool.putconn(conn)

    async def _fetchall(self, sql: str, params: Sequence[Any] | dict[str, Any]) -> list[Any]:
        """Rows of one read. A read that met a dead pooled connection (the server restarted
        since it was last used) is run once more, on a new connection."""
        for attempt in (1, 2):
            try:
                async with self._conn(writing=False) as conn:
                    cur = await conn.execute(sql, params, binary=True)
                    return await cur.fetchall()
            except StorageError as exc:
                if attempt == 2 or not isinstance(exc.__cause__, psycopg.OperationalError) \
                        or exc.info.code != CODE_STORE_UNAVAILABLE:
                    raise
        raise AssertionError("unreachable")

    async def _write_one(self, sql: str, params: Sequence[Any] | dict[str, Any]
                         ) -> tuple[Any, ...] | None:
        """Run one write statement; its row, or None if a unique key refused it (a
        concurrent writer won)."""
        self._writable()
        try:
            async with self._conn(writing=True) as conn:
                cur = await conn.execute(sql, params, binary=True)
                return await cur.fetchone()
        except StorageError as exc:
            if isinstance(exc.__cause__, psycopg.errors.UniqueViolation):
                return None
            raise

    def _remember(self, rid: str, head: int) -> None:
        if len(self._heads) >= _HEAD_CACHE:
            self._heads.clear()
        self._heads[rid] = head

    # events

    async def head_seq(self, run_id: RunId) -> int:
        rid = str(_rules.run_id_of(run_id))
        self._check_open()
        rows = await self._fetchall(q.RUN_HEAD, (rid,))
        return int(rows[0][0]) if rows else 0

    def _moved(self, rid: str, expected: int, seen: int | None) -> ConcurrencyError:
        if seen is not None and seen != expected:
            return _rules.head_moved(rid, expected, seen)
        return ConcurrencyError(f"run {rid}: expected head {expected}, but another writer "
                                "moved it meanwhile", code=CODE_CONCURRENCY)

    async def append(self, run_id: RunId, expected_seq: int,
                     envelopes: Sequence[EventEnvelope]) -> int:
        envelopes = list(envelopes)
        run_id = _rules.check_envelopes(run_id, expected_seq, envelopes)
        self._check_open()
        rid = str(run_id)
        rows = _rules.event_rows(rid, envelopes)
        scan = _rules.scan_events(run_id, envelopes)
        self._writable()
        if not rows:
            head = await self.head_seq(run_id)
            if head != expected_seq:
                raise _rules.head_moved(rid, expected_seq, head)
            return head
        new_head = expected_seq + len(rows)
        bindings = scan.bindings
        if expected_seq and len(rows) == 1 and not bindings and not scan.refs:
            (seq, ts, kind, name, event_sum, body), = rows
            row = await self._write_one(q.APPEND_PLAIN_ONE, {
                "rid": rid, "expected": expected_seq, "new": new_head,
                "now": _rules.now_millis(), "op": scan.op_id, "status": scan.status,
                "seq": seq, "ts1": ts, "kind": kind, "name": name, "sum": event_sum,
                "body": body})
            if row is not None and row[0] is not None:
                self._remember(rid, new_head)
                return new_head
            raise self._moved(rid, expected_seq, None if row is None else row[1])
        keys = list(bindings)
        params = {
            "rid": rid, "expected": expected_seq, "new": new_head, "now": _rules.now_millis(),
            "op": scan.op_id, "status": scan.status,
            "seqs": [r[0] for r in rows], "ts": [r[1] for r in rows],
            "kinds": [r[2] for r in rows], "names": [r[3] for r in rows],
            "sums": [r[4] for r in rows], "bodies": [r[5] for r in rows],
            "keys": keys, "pids": [bindings[k][0] for k in keys],
            "bseqs": [bindings[k][1] for k in keys],
            "bsums": [cs.binding_sum(rid, k, bindings[k][0], bindings[k][1]) for k in keys],
            "refs": list(scan.refs), "rseqs": list(scan.refs.values()),
        }
        if expected_seq == 0:
            sql = q.APPEND_NEW_RUN
        else:
            sql = q.APPEND_CHECKED if (bindings or scan.refs) else q.APPEND_PLAIN
        for attempt in range(2):
            row = await self._write_one(sql, params)
            if row is None:
                raise self._moved(rid, expected_seq, None)
            pk, seen, conflict_key, conflict_pid, missing, missing_seq = row
            if pk is not None:
                self._remember(rid, new_head)
                return new_head
            if seen == expected_seq or (seen is None and expected_seq == 0):
                if conflict_key is not None:
                    raise _rules.binding_conflict(rid, conflict_key, conflict_pid,
                                                  bindings[conflict_key][0])
                if missing is not None:
                    raise _rules.missing_artifact(rid, int(missing_seq), missing)
            if sql is q.APPEND_CHECKED and seen is not None and seen < expected_seq \
                    and attempt == 0:
                continue  # the statement's snapshot predates a commit: look again
            raise self._moved(rid, expected_seq, seen)
        raise AssertionError("unreachable")

    def _decode(self, run_id: RunId, row: Sequence[Any]) -> EventEnvelope:
        seq, ts, kind, name, stored_sum, body = row
        if cs.event_sum(str(run_id), seq, ts, kind, name, body) != stored_sum:
            raise CorruptionError(f"{self._where}: event {seq} of run {run_id} fails its "
                                  "checksum")
        try:
            event = decode_event(body)
        except Exception as exc:
            raise CorruptionError(f"{self._where}: event {seq} of run {run_id} cannot be "
                                  f"decoded: {exc}") from exc
        return EventEnvelope(run_id, seq, ts, event)

    async def read_range(self, run_id: RunId, from_seq: int = 1,
                         to_seq: int | None = None) -> list[EventEnvelope]:
        run_id = _rules.run_id_of(run_id)
        start, stop = _rules.range_of(from_seq, to_seq)
        self._check_open()
        rows = await self._fetchall(q.EVENT_RANGE, (str(run_id), start, stop, None))
        return [self._decode(run_id, row) for row in rows]

    async def iter_events(self, run_id: RunId, from_seq: int = 1, to_seq: int | None = None,
                          *, page_size: int = 1000) -> AsyncIterator[EventEnvelope]:
        """Stream events in pages of ``page_size`` rows: memory stays bounded by one page."""
        run_id = _rules.run_id_of(run_id)
        start, stop = _rules.range_of(from_seq, to_seq)
        page_size = _rules.page_size_of(page_size)
        self._check_open()
        rid = str(run_id)
        while start <= stop:
            rows = await self._fetchall(q.EVENT_RANGE, (rid, start, stop, page_size))
            for row in rows:
                yield self._decode(run_id, row)
            if len(rows) < page_size:
                return
            start = rows[-1][0] + 1

    async def list_runs(self, *, after: RunId | str | None = None, limit: int | None = None,
                        newest_first: bool = False) -> list[RunSummary]:
        """Runs in creation order (``run_pk``), paged: see :meth:`Store.list_runs
        <mfm_store.stores.EventStore.list_runs>`. Each page is one indexed query."""
        after_id, count = _paging.check_list_runs(after, limit, newest_first)
        sql = q.RUN_PAGE_NEWEST if newest_first else q.RUN_PAGE
        rows = await self._fetchall(sql, {"after": None if after_id is None else str(after_id),
                                          "limit": count})
        if not rows[0][0] and after_id is not None:
            raise _paging.unknown_after(after_id)
        return [
            RunSummary(run_id=RunId.parse(rid), op_id=None if op is None else OpId(op),
                       status=status, head_seq=head, created_millis=created,
                       updated_millis=updated)
            for _found, rid, op, status, head, created, updated in rows if rid is not None
        ]

    def follow(self, run_id: RunId | str | None = None, *, after: After = None) -> Follower:
        """Committed events as they land, by polling: one run's (cursor: seq) or every run's
        (cursor: each run's seq); see :mod:`mfm_store.postgres._follow`. Ends when closed
        (``aclose``) or when the store closes."""
        self._check_open()
        return _follow.follower(self, run_id, after)

    # artifacts

    async def put(self, kind: ArtifactKind, data: bytes) -> ArtifactId:
        data = _rules.check_artifact(kind, data)
        self._check_open()
        aid = artifact_id_for_bytes(data)
        self._writable()
        text = str(kind)
        async with self._conn(writing=True) as conn:
            await conn.execute(q.ARTIFACT_INSERT, {
                "id": aid, "kind": text, "size": len(data),
                "sum": cs.artifact_sum(aid, text, len(data), data),
                "now": _rules.now_millis(), "data": data})
        return ArtifactId(aid)

    async def get(self, artifact_id: ArtifactId) -> bytes:
        aid = _rules.artifact_id_of(artifact_id)
        self._check_open()
        rows = await self._fetchall(q.ARTIFACT_GET, (aid,))
        if not rows:
            raise NotFoundError(f"artifact not found: {aid}")
        kind, size, stored_sum, data = rows[0]
        if cs.artifact_sum(aid, kind, size, data) != stored_sum or size != len(data):
            raise CorruptionError(f"{self._where}: artifact {aid} fails its checksum")
        return bytes(data)

    async def exists(self, artifact_id: ArtifactId) -> bool:
        aid = _rules.artifact_id_of(artifact_id)
        self._check_open()
        return bool(await self._fetchall(q.ARTIFACT_EXISTS, (aid,)))

    async def missing(self, artifact_ids: Iterable[ArtifactId]) -> set[ArtifactId]:
        """Those of ``artifact_ids`` the store lacks, in one round trip (sync asks this)."""
        wanted = {_rules.artifact_id_of(a) for a in artifact_ids}
        self._check_open()
        if not wanted:
            return set()
        rows = await self._fetchall(q.ARTIFACTS_PRESENT, (sorted(wanted),))
        return wanted - {ArtifactId(r[0]) for r in rows}

    async def iter_artifacts(self, ids: Iterable[str] | None = None
                             ) -> AsyncIterator[tuple[ArtifactId, ArtifactKind, bytes]]:
        """Every artifact (or those of ``ids`` the store holds) as ``(id, kind, bytes)``, in
        id order, one at a time; each is checked as by :meth:`get`."""
        if ids is None:
            # Keyset pages by id: memory stays bounded by one page whatever the count.
            after = ""
            while True:
                page = await self._fetchall(_ARTIFACT_PAGE, (after, _ARTIFACT_PAGE_SIZE))
                for aid, kind in page:
                    yield ArtifactId(aid), ArtifactKind.parse(kind), await self.get(aid)
                if len(page) < _ARTIFACT_PAGE_SIZE:
                    return
                after = page[-1][0]
        else:
            metas: list[tuple[str, str]] = []
            for aid in sorted(set(ids)):
                rows = await self._fetchall(q.ARTIFACT_KIND, (aid,))
                if rows:
                    metas.append((aid, rows[0][0]))
        for aid, kind in metas:
            yield ArtifactId(aid), ArtifactKind.parse(kind), await self.get(ArtifactId(aid))

    # facts

    async def bind_fact(self, run_id: RunId, key: FactKey, payload_id: ArtifactId, *,
                        expected_seq: int | None = None,
                        refs: Sequence[ArtifactId] = ()) -> FactBinding:
        run_id, key = _rules.check_bind(run_id, key, expected_seq)
        refs = _rules.check_refs(refs) if refs else ()
        payload_id = _rules.artifact_id_of(payload_id)
        self._check_open()
        return await self._bind(run_id, key, payload_id, expected_seq, None, refs)

    async def record_fact(self, run_id: RunId, key: FactKey, data: bytes, *,
                          expected_seq: int | None = None,
                          refs: Sequence[ArtifactId] = ()) -> FactBinding:
        run_id, key = _rules.check_bind(run_id, key, expected_seq)
        refs = _rules.check_refs(refs) if refs else ()
        data = _rules.check_artifact(ArtifactKind.FACT_PAYLOAD, data)
        self._check_open()
        return await self._bind(run_id, key, artifact_id_for_bytes(data),
                                expected_seq, data, refs)

    async def _bind(self, run_id: RunId, key: FactKey, payload_id: ArtifactId,
                    expected_seq: int | None, data: bytes | None,
                    refs: Sequence[ArtifactId] = ()) -> FactBinding:
        self._writable()
        rid = str(run_id)
        body = encode_event(_rules.fact_recorded_event(key, payload_id, refs))
        akind = str(ArtifactKind.FACT_PAYLOAD)
        params: dict[str, Any] = {
            "rid": rid, "key": key, "pid": payload_id, "body": body,
            "refs": list(refs), "nrefs": len(refs),
            "has_data": data is not None, "data": data, "akind": akind,
            "asize": None if data is None else len(data),
            "asum": None if data is None else cs.artifact_sum(payload_id, akind, len(data),
                                                               data),
        }
        # The event's checksum covers its seq, so the seq is guessed (the caller's expected
        # head, or the last head this store saw) and the statement writes only if right.
        guess = expected_seq if expected_seq is not None else self._heads.get(rid, 0)
        for _attempt in range(_OPTIMISTIC_TRIES):
            seq = guess + 1
            params.update(g=guess, seq=seq, sum=_fact_sum(rid, seq, body),
                          bsum=cs.binding_sum(rid, key, payload_id, seq),
                          now=_rules.now_millis())
            row = await self._write_one(q.BIND_NEW_RUN if guess == 0 else q.BIND_EXISTING,
                                        params)
            if row is None:
                continue  # a concurrent writer won a unique key: look again
            pk, seen, bound_pid, bound_seq, present = row
            if pk is not None:
                self._remember(rid, seq)
                return FactBinding(payload_id, True, seq)
            if bound_pid is not None:
                return FactBinding(ArtifactId(bound_pid), False, int(bound_seq))
            if not present:
                raise await self._absent(params)
            head = int(seen or 0)
            if expected_seq is not None and head != expected_seq:
                raise _rules.head_moved(rid, expected_seq, head)
            if expected_seq is None:
                guess = head
        return await self._bind_locked(rid, params, expected_seq)

    async def _bind_locked(self, rid: str, params: dict[str, Any],
                           expected_seq: int | None) -> FactBinding:
        """The contended path: lock the run's row, so the head cannot move while we bind."""
        self._writable()
        async with self._conn(writing=True) as conn, conn.transaction():
            now = _rules.now_millis()
            cur = await conn.execute(q.RUN_LOCK, (rid,))
            locked = await cur.fetchone()
            if locked is None:
                await conn.execute(q.RUN_CREATE_EMPTY, (rid, now, now))
                cur = await conn.execute(q.RUN_LOCK, (rid,))
                locked = await cur.fetchone()
                assert locked is not None
            head = int(locked[0])
            guess = head if expected_seq is None else expected_seq
            seq = guess + 1
            params.update(g=guess, seq=seq, sum=_fact_sum(rid, seq, params["body"]),
                          bsum=cs.binding_sum(rid, params["key"], params["pid"], seq), now=now)
            cur = await conn.execute(q.BIND_EXISTING, params, binary=True)
            row = await cur.fetchone()
            assert row is not None
            pk, _seen, bound_pid, bound_seq, present = row
            if pk is not None:
                self._remember(rid, seq)
                return FactBinding(ArtifactId(params["pid"]), True, seq)
            if bound_pid is not None:
                return FactBinding(ArtifactId(bound_pid), False, int(bound_seq))
            if not present:
                raise await self._absent(params)
            raise _rules.head_moved(rid, guess, head)

    async def _absent(self, params: dict[str, Any]) -> NotFoundError:
        """The error for a binding whose payload or a declared reference is absent."""
        if not params["has_data"] and not await self.exists(params["pid"]):
            return NotFoundError(f"fact payload artifact not found: {params['pid']}")
        present = {row[0] for row in await self._fetchall(q.ARTIFACTS_PRESENT,
                                                          (params["refs"],))}
        absent = [ref for ref in params["refs"] if ref not in present] or params["refs"]
        return NotFoundError(f"fact {params['key']!r} refers to artifact {absent[0]}, which "
                             "is not in the store")

    def _binding(self, rid: str, row: Sequence[Any]) -> tuple[str, ArtifactId]:
        key, pid, seq, stored_sum = row
        if cs.binding_sum(rid, key, pid, seq) != stored_sum:
            raise CorruptionError(f"{self._where}: fact binding {key!r} of run {rid} fails "
                                  "its checksum")
        return key, ArtifactId(pid)

    async def get_fact(self, run_id: RunId, key: FactKey) -> ArtifactId | None:
        rid = str(_rules.run_id_of(run_id))
        wanted = _rules.lookup_key(key)
        self._check_open()
        if wanted is None:
            return None
        rows = await self._fetchall(q.BINDING_GET_BY_RUN_ID, (rid, wanted))
        return self._binding(rid, rows[0])[1] if rows else None

    async def facts(self, run_id: RunId) -> dict[FactKey, ArtifactId]:
        rid = str(_rules.run_id_of(run_id))
        self._check_open()
        rows = await self._fetchall(q.BINDINGS_OF_RUN, (rid,))
        return dict(self._binding(rid, row) for row in rows)

    # maintenance

    async def verify(self, *, quick: bool = False,
                     progress: ProgressFn | None = None) -> VerifyReport:
        """Check every checksum, hash, seq, head, binding and artifact reference, in one
        read-only snapshot. Reports every problem found (never stops at the first).
        ``quick`` is accepted for symmetry with SQLite and changes nothing: the server keeps
        its own pages consistent."""
        total = None
        if progress is not None:
            counts = await self.stats()
            total = counts["artifacts"] + counts["events"] + counts["fact_bindings"]
            progress("verify", 0, total)

        def tick(n: int) -> None:
            if progress is not None:
                progress("verify", n, total)

        async with self._conn(writing=False) as conn:
            return await verify_connection(conn, tick if progress else None)

    async def stats(self) -> dict[str, int]:
        """Counts of runs, events, bindings, artifacts; artifact bytes; ``file_bytes`` is the
        on-disk size of the schema's tables (with indexes and TOAST); ``wal_bytes`` is 0."""
        (runs, events, bindings, artifacts, artifact_bytes, size), = await self._fetchall(
            q.STATS, ())
        return {"runs": runs, "events": events, "fact_bindings": bindings,
                "artifacts": artifacts, "artifact_bytes": int(artifact_bytes),
                "file_bytes": int(size), "wal_bytes": 0}

    async def prune(self, run_ids: Iterable[RunId | str] | None = None, *,
                    finished_before: int | float | datetime | None = None,
                    keep_last: int | None = None,
                    archive: str | os.PathLike[str] | Store | None = None,
                    dry_run: bool = False,
                    artifact_min_age_seconds: float = 60.0) -> PruneReport:
        """As :meth:`SqliteStore.prune <mfm_store.sqlite.SqliteStore.prune>` (the server
        reuses freed space itself; no file to shrink). See README, "Keeping the file small"."""
        from ._prune import prune

        return await prune(self, run_ids, finished_before=finished_before,
                           keep_last=keep_last, archive_to=archive, dry_run=dry_run,
                           artifact_min_age_seconds=artifact_min_age_seconds)

    async def gc(self, *, apply: bool = False, min_age_seconds: float = 3600.0) -> GcReport:
        """Find (and with ``apply=True`` delete) artifacts that no run references.

        Referenced: fact binding payloads and every artifact a kernel event or a domain
        event's ``payload_ref`` names. Artifacts younger than ``min_age_seconds`` are kept.
        The scan reads one snapshot without blocking writers; the delete holds appends and
        bindings off (a SHARE lock on ``runs``) while it re-checks what was written since.
        A write takes its lock on ``runs`` before its snapshot, so one that waited for the
        delete sees it (and refuses to name a deleted artifact); a put of a candidate's bytes
        makes it young again, which the delete re-checks row by row.
        """
        cutoff = _rules.now_millis() - int(min_age_seconds * 1000)
        async with self._conn(writing=False) as conn:
            found, heads = await unreferenced(conn, cutoff)
        candidates: dict[str, int] = dict(found)
        if apply and candidates:
            self._writable()
            async with self._conn(writing=True) as conn, conn.transaction():
                await conn.execute(q.GC_LOCK)
                cur = await conn.execute(q.RUN_HEADS)
                for pk, head in await cur.fetchall():
                    since = heads.get(pk, 0)
                    if head > since:
                        for ref in await refs_since(conn, pk, since):
                            candidates.pop(ref, None)
                await conn.execute(q.ARTIFACT_DELETE, (list(candidates), cutoff))
        return GcReport(artifacts=sorted(ArtifactId(a) for a in candidates),
                        bytes=sum(candidates.values()), applied=apply)


def _fact_sum(rid: str, seq: int, body: bytes) -> int:
    return cs.event_sum(rid, seq, None, "Domain", "fact_recorded", body)
