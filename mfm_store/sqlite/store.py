"""``SqliteStore``: runs, events, fact bindings and artifacts in one SQLite file (SPEC §5.2-5.4)."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import warnings
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import aiosqlite
import xxhash

from .. import _rules
from .._io_common import CheckedPayload
from .._opening import Opening
from .._paging import check_list_runs, unknown_after
from ..canonical import content_id
from ..errors import (
    CODE_READ_ONLY,
    CODE_STORE_CLOSED,
    CorruptionError,
    NotFoundError,
    StorageError,
)
from ..events import (
    EventEnvelope,
    decode_event,
)
from ..follow import After, Follower
from ..ids import ArtifactId, FactKey, OpId, RunId
from ..retention import PruneReport
from ..stores import ArtifactKind, FactBinding, ProgressFn, RunSummary, Store
from . import _checksums as cs
from . import _follow, _readonly
from . import _queries as q
from ._append_write import Append, KnownRunAppend, RunState, event_rows
from ._backup import write_backup
from ._errors import map_errors
from ._fact_write import FactWrite, NewRow, RunRow, artifact_row, check_bind
from ._gc import GcReport, refs_since, unreferenced
from ._prepare import SYNCHRONOUS, Durability, prepare
from ._snapshot import ReadSnapshot, read_snapshot
from ._verify import VerifyReport, verify_connection
from ._writer import GroupCommitWriter

__all__ = ["Durability", "SqliteStore"]

_I64 = 1 << 63
_U64 = 1 << 64
_T = TypeVar("_T")
_KIND_BATCH = 500  # ids per json_each query in iter_artifacts(ids)
_ARTIFACT_PAGE = "SELECT id, kind FROM artifacts WHERE id > ? ORDER BY id LIMIT ?"


def checksum(data: bytes, seed: int = 0) -> int:
    """xxh3-64 of ``data`` as a signed 64-bit integer (the checksum of schema versions 1-2)."""
    value: int = xxhash.xxh3_64_intdigest(data, seed)
    return value - (1 << 64) if value >= _I64 else value


class SqliteStore:
    """The single-file store. Open with ``await SqliteStore.open(path)`` or
    ``async with SqliteStore.open(path) as store``.

    Durability: with ``durability="full"`` (default) every acknowledged append, binding or put
    is fsynced and survives power loss. With ``"normal"`` it survives a crash of the process but
    the last commits may be lost on power loss or an OS crash.

    Writes from concurrent tasks are group-committed; each caller is answered after the commit
    that holds its write. Commits run on a writer thread, never blocking the event loop. Several
    processes may open the same file: writers wait for each other up to ``busy_timeout``
    seconds, then get ``StorageError`` (code ``store_busy``).

    Every read checks the row checksums of what it returns (``CorruptionError`` if one fails).
    """

    def __init__(self, path: Path, uri: str, reader: aiosqlite.Connection,
                 writer: GroupCommitWriter | None, version: int,
                 private_copy: Path | None = None, held: bool = False) -> None:
        self._path = path
        self._uri = uri
        self._reader = reader
        self._writer = writer
        self._closed = False
        # What this store last wrote of each run (committed); see KnownRunAppend.
        self._runs: dict[str, RunState] = {}
        self._version = version
        self._v3 = version >= 3
        self._layout = 3 if self._v3 else 2
        self._private_copy = private_copy
        self._held = held

    # opening and closing

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, durability: Durability = "full",
             read_only: bool = False, busy_timeout: float = 10.0,
             commit_on_loop: bool | None = None) -> Opening[SqliteStore]:
        """Open (creating and migrating if needed) the store at ``path``.

        ``read_only=True`` never creates or changes any file in the file's folder (no WAL
        index, no migration): a file nobody has open is read as it is, and one whose ``-wal``
        still holds commits (a plain copy of a live file, or a file a killed writer left) is
        read from a private temporary copy of the file and its ``-wal``. Mutating methods then
        raise ``StorageError`` (code ``store_read_only``). Files of schema versions 1 and 2 are
        read as they are. Raises ``StorageError`` with code ``not_an_mfm_store`` for a foreign
        or empty file or one that is not a regular file, ``schema_too_new`` for a newer
        schema, ``CorruptionError`` for a truncated file.

        ``commit_on_loop`` says where commits (fsync included) run. ``None`` (the default)
        adapts: on the writer's thread while commits are slow (the first ones, then any over
        1 ms on the loop), on the event loop's thread once 8 in a row took under 0.5 ms. A
        fast disk then keeps the speed of commits on the loop (a lone durable write skips two
        thread hand-overs: about 1.3x the sequential append rate on the benchmark VM) and a
        slow one never holds the loop. ``True``: always on the loop's thread; the loop stops
        for every commit, as long as the disk takes to sync (milliseconds, tens of them on a
        laptop SSD or an SD card). ``False``: always on the writer's thread. Waiting for
        another process's lock always happens off the loop.
        """
        if durability not in SYNCHRONOUS:
            raise ValueError(f"durability must be 'full' or 'normal', not {durability!r}")
        return Opening(cls._open(Path(path), durability, read_only, busy_timeout,
                                 commit_on_loop))

    @classmethod
    async def _open(cls, path: Path, durability: Durability, read_only: bool,
                    busy_timeout: float, commit_on_loop: bool | None = None) -> SqliteStore:
        timeout_ms = int(busy_timeout * 1000)
        uri, writer_conn, version, copy = await asyncio.to_thread(
            prepare, path, durability, read_only, timeout_ms)
        held = writer_conn is not None or (read_only and copy is None and "immutable" not in uri)
        try:
            with map_errors(str(path)):
                reader = await aiosqlite.connect(uri, uri=True, isolation_level=None,
                                                 timeout=busy_timeout)
                if not read_only:
                    await reader.execute("PRAGMA query_only = ON")
        except BaseException:
            if writer_conn is not None:
                writer_conn.close()
            if copy is not None:
                _readonly.discard(copy)
            raise
        writer = None if writer_conn is None else GroupCommitWriter(
            writer_conn, str(path), timeout_ms, commit_on_loop=commit_on_loop)
        if held:
            _readonly.hold(path)
        return cls(path, uri, reader, writer, version, copy, held)

    @property
    def path(self) -> Path:
        return self._path

    @property
    def read_only(self) -> bool:
        return self._writer is None

    @property
    def schema_version(self) -> int:
        """The file's schema version (older than the latest only for a read-only open)."""
        return self._version

    async def close(self) -> None:
        """Finish pending writes and close. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            await _follow.close_hub(self)
            if self._writer is not None:
                await self._writer.drain()
        finally:
            try:
                await self._reader.close()
                if self._writer is not None:
                    self._writer.close()
            finally:
                if self._held:
                    _readonly.release(self._path)
                if self._private_copy is not None:
                    _readonly.discard(self._private_copy)

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

    def _corrupt(self, what: str) -> CorruptionError:
        return CorruptionError(f"{self._path}: {what} fails its checksum; run verify")

    def _check_run(self, row: Sequence[Any]) -> None:
        pk, rid, op_id, status, head, created, updated, stored = row
        if self._v3 and cs.run_sum(pk, rid, op_id, status, head, created, updated) != stored:
            raise self._corrupt(f"the row of run {rid}")
        if not isinstance(head, int):
            raise self._corrupt(f"the row of run {rid}")

    # events

    async def head_seq(self, run_id: RunId) -> int:
        rid = str(_rules.run_id_of(run_id))
        rows = await self._fetchall(q.RUN_READ[self._layout], (rid,))
        if not rows:
            return 0
        self._check_run(rows[0])
        return int(rows[0][4])

    async def append(self, run_id: RunId, expected_seq: int,
                     envelopes: Sequence[EventEnvelope]) -> int:
        envelopes = list(envelopes)
        _rules.check_envelopes(run_id, expected_seq, envelopes)
        rid = str(run_id)
        rows, scan = event_rows(run_id, rid, envelopes)
        writer = self._writer
        if writer is None or self._closed:
            writer = self._writable()  # raises
        known = self._runs.get(rid)
        if (known is not None and known.head == expected_seq and rows and not scan.bindings
                and not scan.refs and scan.op_id is None and scan.status is None):
            op: Append = KnownRunAppend(rid, expected_seq, scan, rows, known)
        else:
            op = Append(rid, expected_seq, scan, rows)
        result: tuple[int, RunState | None] = await writer.run(op)
        head, state = result
        if state is not None:
            self._runs[rid] = state  # committed
        return head

    def _decode(self, run_id: RunId, rid: str, row: Sequence[Any]) -> EventEnvelope:
        seq, ts, kind, name, stored_sum, body = row
        try:
            ok = (cs.event_sum(rid, seq, ts, kind, name, body) if self._v3
                  else cs.legacy_event_sum(seq, body)) == stored_sum
        except (TypeError, ValueError, OverflowError):
            ok = False  # a column of the wrong type: a damaged record
        if not ok:
            raise self._corrupt(f"event {seq} of run {run_id}")
        try:
            event = decode_event(body)
        except Exception as exc:
            raise CorruptionError(
                f"{self._path}: event {seq} of run {run_id} cannot be decoded: {exc}") from exc
        return EventEnvelope(run_id, seq, ts, event)

    async def read_range(self, run_id: RunId, from_seq: int = 1,
                         to_seq: int | None = None) -> list[EventEnvelope]:
        run_id = _rules.run_id_of(run_id)
        start, stop = _rules.range_of(from_seq, to_seq)
        rid = str(run_id)
        rows = await self._fetchall(q.EVENT_RANGE, (rid, start, stop, -1))
        if not self._v3:
            return [self._decode(run_id, rid, row) for row in rows]
        # _decode inlined (cold_load: a method call and its lookups per row were a tenth of
        # the Python time per event).
        out = []
        head, h, tail_of, decode, envelope = (
            rid + "\0", xxhash.xxh3_64_intdigest, cs.event_tail, decode_event, EventEnvelope)
        tails: dict[str, str] = {}  # seed tails of domain events without ts_millis, by name
        for row in rows:
            seq, ts, kind, name, stored_sum, body = row
            try:  # cs.event_sum, inlined
                if ts is None and type(name) is str and kind == "Domain":
                    tail = tails.get(name)
                    if tail is None:
                        tail = tails[name] = tail_of(ts, kind, name)
                else:
                    tail = tail_of(ts, kind, name)
                value = h(body, h(f"{head}{seq}{tail}".encode("utf-8", "surrogatepass")))
                ok = (value - _U64 if value >= _I64 else value) == stored_sum
            except (TypeError, ValueError, OverflowError):
                ok = False  # a column of the wrong type: a damaged record
            if not ok:
                raise self._corrupt(f"event {seq} of run {run_id}")
            try:
                event = decode(body)
            except Exception as exc:
                raise CorruptionError(f"{self._path}: event {seq} of run {run_id} cannot be "
                                      f"decoded: {exc}") from exc
            out.append(envelope(run_id, seq, ts, event))
        return out

    async def iter_events(self, run_id: RunId, from_seq: int = 1, to_seq: int | None = None,
                          *, page_size: int = 1000) -> AsyncIterator[EventEnvelope]:
        """Stream events in pages of ``page_size`` rows: memory stays bounded by one page."""
        run_id = _rules.run_id_of(run_id)
        start, stop = _rules.range_of(from_seq, to_seq)
        page_size = _rules.page_size_of(page_size)
        rid = str(run_id)
        while start <= stop:
            rows = await self._fetchall(q.EVENT_RANGE, (rid, start, stop, page_size))
            for row in rows:
                yield self._decode(run_id, rid, row)
            if len(rows) < page_size:
                return
            start = rows[-1][0] + 1

    async def list_runs(self, *, after: RunId | str | None = None, limit: int | None = None,
                        newest_first: bool = False) -> list[RunSummary]:
        """Runs in creation order (``run_pk``), paged: see :meth:`Store.list_runs
        <mfm_store.stores.EventStore.list_runs>`. Each page is one indexed query."""
        after_id, count = check_list_runs(after, limit, newest_first)
        bound = -_I64 if not newest_first else _I64 - 1
        if after_id is not None:
            rows = await self._fetchall(q.RUN_PK, (str(after_id),))
            if not rows:
                raise unknown_after(after_id)
            bound = rows[0][0]
        sql = (q.RUN_PAGE_NEWEST if newest_first else q.RUN_PAGE)[self._layout]
        out = []
        for row in await self._fetchall(sql, (bound, -1 if count is None else count)):
            self._check_run(row)
            _pk, rid, op, status, head, created, updated, _sum = row
            try:
                out.append(RunSummary(run_id=RunId.parse(rid),
                                      op_id=None if op is None else OpId(op), status=status,
                                      head_seq=head, created_millis=created,
                                      updated_millis=updated))
            except ValueError as exc:
                raise CorruptionError(f"{self._path}: the row of run {rid!r} is not "
                                      f"readable ({exc}); run verify") from exc
        return out

    def follow(self, run_id: RunId | str | None = None, *, after: After = None) -> Follower:
        """Committed events as they land, from any process: one run's (cursor: seq) or every
        run's in commit order (cursor: row id); see :mod:`mfm_store.follow` and README,
        "Following runs". Ends when closed (``aclose``) or when the store closes."""
        if self._closed:
            raise StorageError(f"{self._path}: store is closed", code=CODE_STORE_CLOSED)
        return _follow.follower(self, run_id, after)

    # artifacts

    async def put(self, kind: ArtifactKind, data: bytes) -> ArtifactId:
        data = _rules.check_artifact(kind, data)
        row = _artifact_row(kind, data)

        def op(cur: sqlite3.Cursor) -> None:
            cur.execute(q.ARTIFACT_INSERT, row)

        await self._writable().run(op)
        return ArtifactId(row[0])

    async def get(self, artifact_id: ArtifactId) -> bytes:
        aid = _rules.artifact_id_of(artifact_id)
        rows = await self._fetchall(q.ARTIFACT_GET, (aid,))
        if not rows:
            raise NotFoundError(f"artifact not found: {aid}")
        kind, size, stored_sum, data = rows[0]
        try:
            ok = (cs.artifact_sum(aid, kind, size, data) if self._v3
                  else cs.legacy_artifact_sum(data)) == stored_sum
        except (TypeError, ValueError, OverflowError):
            ok = False
        if not ok:
            raise self._corrupt(f"artifact {aid}")
        return bytes(data)

    async def exists(self, artifact_id: ArtifactId) -> bool:
        aid = _rules.artifact_id_of(artifact_id)
        return bool(await self._fetchall(q.ARTIFACT_EXISTS, (aid,)))

    async def missing(self, artifact_ids: Iterable[ArtifactId]) -> set[ArtifactId]:
        wanted = {_rules.artifact_id_of(a) for a in artifact_ids}
        if not wanted:
            return set()
        rows = await self._fetchall(q.ARTIFACTS_PRESENT, (json.dumps(sorted(wanted)),))
        return wanted - {ArtifactId(r[0]) for r in rows}

    # facts

    async def bind_fact(self, run_id: RunId, key: FactKey, payload_id: ArtifactId, *,
                        expected_seq: int | None = None,
                        refs: Sequence[ArtifactId] = ()) -> FactBinding:
        run_id, key = check_bind(run_id, key, expected_seq)
        refs = _rules.check_refs(refs) if refs else ()
        return await self._bind(run_id, key, _rules.artifact_id_of(payload_id), expected_seq,
                                None, refs)

    async def record_fact(self, run_id: RunId, key: FactKey, data: bytes, *,
                          expected_seq: int | None = None,
                          refs: Sequence[ArtifactId] = ()) -> FactBinding:
        run_id, key = check_bind(run_id, key, expected_seq)
        refs = _rules.check_refs(refs) if refs else ()
        if type(data) is CheckedPayload:  # from LiveIo: checked and hashed once, there
            payload_id = data.artifact_id
            row = artifact_row(data, payload_id)
        else:
            row = artifact_row(_rules.check_artifact(ArtifactKind.FACT_PAYLOAD, data))
            payload_id = ArtifactId(row[0])
        rid = str(run_id)
        st = self._runs.get(rid)
        outcome: tuple[FactBinding, NewRow | None] = await self._writable().run(
            FactWrite(rid, key, payload_id, expected_seq, row, refs, None if st is None else
                      (st.pk, st.head, st.op_id, st.status, st.created),
                      None if st is None else st.prefix))
        binding, new = outcome
        if new is not None:
            self._runs[rid] = RunState(*new)  # committed
        return binding

    def _known(self, rid: str) -> tuple[RunRow | None, str | None]:
        """The run's row as this store last wrote it, and its checksum prefix if kept."""
        st = self._runs.get(rid)
        if st is None:
            return None, None
        return (st.pk, st.head, st.op_id, st.status, st.created), st.prefix

    async def _bind(self, run_id: RunId, key: str, payload_id: ArtifactId,
                    expected_seq: int | None, artifact: tuple[Any, ...] | None,
                    refs: Sequence[ArtifactId]) -> FactBinding:
        """One fact write (see ``_fact_write``); the run's row it leaves is remembered once
        committed."""
        rid = str(run_id)
        known, prefix = self._known(rid)
        outcome: tuple[FactBinding, NewRow | None] = await self._writable().run(
            FactWrite(rid, key, payload_id, expected_seq, artifact, refs, known, prefix))
        binding, new = outcome
        if new is not None:
            self._runs[rid] = RunState(*new)  # committed
        return binding

    def _check_binding(self, rid: str, row: Sequence[Any]) -> ArtifactId:
        key, pid, seq, stored = row
        if self._v3 and cs.binding_sum(rid, key, pid, seq) != stored:
            raise self._corrupt(f"the binding of fact {key!r} of run {rid}")
        return ArtifactId(pid)

    async def get_fact(self, run_id: RunId, key: FactKey) -> ArtifactId | None:
        rid = str(_rules.run_id_of(run_id))
        wanted = _rules.lookup_key(key)
        if wanted is None:
            return None
        rows = await self._fetchall(q.BINDING_GET_BY_RUN_ID[self._layout], (rid, wanted))
        return self._check_binding(rid, rows[0]) if rows else None

    async def facts(self, run_id: RunId) -> dict[FactKey, ArtifactId]:
        rid = str(_rules.run_id_of(run_id))
        rows = await self._fetchall(q.BINDINGS_OF_RUN[self._layout], (rid,))
        return {row[0]: self._check_binding(rid, row) for row in rows}

    # maintenance: each runs on its own connection in a worker thread

    async def _in_thread(self, fn: Any, *args: Any) -> Any:
        if self._closed:
            raise StorageError(f"{self._path}: store is closed", code=CODE_STORE_CLOSED)
        return await asyncio.to_thread(_with_connection, self._uri, str(self._path), fn, *args)

    async def verify(self, *, quick: bool = False,
                     progress: ProgressFn | None = None) -> VerifyReport:
        """Check the whole file; ``ok`` means every read returns what was written.

        Runs SQLite's full ``PRAGMA integrity_check`` (pages, and every index against its
        table), compares the schema objects (tables, indexes, triggers, view) with those of the
        file's schema version, and checks every row checksum, every artifact's SHA-256, seq
        contiguity, each run row against its events (head, status, op id, run id), every
        binding against its ``fact_recorded`` event and payload, every referenced artifact.
        ``quick=True`` runs ``PRAGMA quick_check`` instead of ``integrity_check`` (faster on a
        large file; indexes are not compared with their tables) and the report says so.
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

        result: VerifyReport = await self._in_thread(verify_connection, self._version,
                                                     bool(quick), tick)
        return result
    async def backup(self, dest: str | os.PathLike[str]) -> Path:
        """Write a consistent copy of the store to the new file ``dest`` while writers continue.

        The copy is one self-contained file (rollback journal, no ``-wal``) of the latest
        schema version, ready to be opened read-only elsewhere, with each run's events stored
        together so that a replay of the copy reads few pages. It appears at ``dest`` only once
        complete and synced. Raises ``StorageError`` with code ``destination_exists`` if
        ``dest`` exists, ``disk_full`` if the disk fills up (nothing is left at ``dest``).
        Returns the copy's path.
        """
        if self._closed:
            raise StorageError(f"{self._path}: store is closed", code=CODE_STORE_CLOSED)
        target: Path = await asyncio.to_thread(write_backup, self._uri, str(self._path),
                                               Path(dest))
        return target

    async def read_snapshot(self, fn: Callable[[ReadSnapshot], _T]) -> _T:
        """``fn(snapshot)`` in a worker thread, over one read transaction of the whole file on
        a connection of its own (writers continue): rows streamed and checked, in bounded
        memory (:class:`~mfm_store.sqlite._snapshot.ReadSnapshot`; ``export`` uses it)."""
        result: _T = await self._in_thread(read_snapshot, str(self._path), self._version, fn)
        return result

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
            # Keyset pages by id: memory stays bounded by one page whatever the count.
            after = ""
            while True:
                page = await self._fetchall(_ARTIFACT_PAGE, (after, _KIND_BATCH))
                for aid, kind in page:
                    yield ArtifactId(aid), self._kind_of(aid, kind), await self.get(aid)
                if len(page) < _KIND_BATCH:
                    return
                after = page[-1][0]
        else:
            # The kinds of many ids in one query each (json_each of a batch): one query per
            # id made push no faster than export + import (benchmarks/sync_bench.py).
            wanted = sorted({_rules.artifact_id_of(a) for a in ids})
            metas: list[tuple[str, str]] = []
            for start in range(0, len(wanted), _KIND_BATCH):
                batch = json.dumps(wanted[start:start + _KIND_BATCH])
                metas.extend(tuple(r) for r in await self._fetchall(q.ARTIFACT_KINDS, (batch,)))
        for aid, kind in metas:
            data = await self.get(ArtifactId(aid))
            yield ArtifactId(aid), self._kind_of(aid, kind), data

    def _kind_of(self, aid: str, kind: str) -> ArtifactKind:
        try:
            return ArtifactKind.parse(kind)
        except ValueError as exc:
            raise CorruptionError(f"{self._path}: artifact {aid} has an unreadable kind "
                                  f"({exc}); run verify") from exc

    async def prune(self, run_ids: Iterable[RunId | str] | None = None, *,
                    finished_before: int | float | datetime | None = None,
                    keep_last: int | None = None,
                    archive: str | os.PathLike[str] | Store | None = None,
                    dry_run: bool = False,
                    artifact_min_age_seconds: float = 60.0) -> PruneReport:
        """Delete finished runs: those of ``run_ids``, or by policy (finished before
        ``finished_before``, a datetime or Unix ms; all but the ``keep_last`` most recently
        finished). A running run is never pruned. With ``archive`` (a new export file path or
        another store) the runs are copied there and the copy checked first. The runs'
        events, bindings and rows go in one transaction; then the artifacts no remaining run
        references (put more than ``artifact_min_age_seconds`` ago); then the freed pages go
        back to the file system (incremental vacuum). ``dry_run`` only reports what would go.
        See README, "Keeping the file small"."""
        from ._prune import prune

        return await prune(self, run_ids, finished_before=finished_before,
                           keep_last=keep_last, archive_to=archive, dry_run=dry_run,
                           artifact_min_age_seconds=artifact_min_age_seconds)

    async def gc(self, *, apply: bool = False, min_age_seconds: float = 3600.0) -> GcReport:
        """Find (and with ``apply=True`` delete) artifacts that no run references.

        Referenced: fact binding payloads and every artifact a kernel event or a domain
        event's ``payload_ref`` names. Artifacts put (or put again) less than
        ``min_age_seconds`` ago are kept, so that bytes put just before the binding or append
        that uses them are never collected; a binding or append naming an artifact gc removed
        meanwhile is refused (``artifact_not_found``), never left dangling. The scan runs
        without blocking writers; the delete re-checks, in its write transaction, everything
        written since the scan. A read-only store refuses ``apply=True``
        (``store_read_only``).
        """
        if apply:
            self._writable()  # raises on a read-only or closed store
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


def _artifact_row(kind: ArtifactKind, data: bytes) -> tuple[Any, ...]:
    aid = content_id(data)
    text = str(kind)
    return (aid, text, len(data), cs.artifact_sum(aid, text, len(data), data),
            _rules.now_millis(), data)
