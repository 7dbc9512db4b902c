"""One read transaction over the whole file, streamed: what ``export`` reads.

:class:`ReadSnapshot` is handed to a function running in a worker thread on its own
connection (``SqliteStore.read_snapshot``). Its iterators stream rows from one cursor each and
check every row as the store's reads do (``CorruptionError`` naming it); nothing they keep
grows with the file: a run's references go to a TEMP table on disk.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from ..errors import CorruptionError, RunNotFoundError
from ..events import Event, decode_event
from ..ids import RunId
from ..stores import ArtifactKind
from . import _checksums as cs

__all__ = ["ReadSnapshot", "read_snapshot"]

T = TypeVar("T")

COUNTS = (
    "SELECT (SELECT count(*) FROM runs), (SELECT coalesce(sum(head_seq), 0) FROM runs),"
    " (SELECT count(*) FROM artifacts)"
)
_RUN_COLUMNS = "r.run_pk, r.run_id, r.op_id, r.status, r.head_seq, r.created_ms, r.updated_ms, "
RUNS = {
    layout: "SELECT " + _RUN_COLUMNS + checksum + " FROM runs AS r {where} ORDER BY r.run_pk"
    for layout, checksum in ((3, "r.checksum"), (2, "NULL"))
}
# Events in (run_pk, seq) order from the primary-key index, merged with the runs by run_pk
# (run columns repeated on every event row made export 6% slower).
EVENTS = (
    "SELECT run_pk, seq, ts_millis, kind, name, checksum, body FROM events {where}"
    " ORDER BY run_pk, seq"
)
ARTIFACTS = "SELECT id, kind, size, checksum, data FROM artifacts ORDER BY id"
REFS_TABLE = "CREATE TEMP TABLE IF NOT EXISTS export_refs (id TEXT PRIMARY KEY) WITHOUT ROWID"
REFS_CLEAR = "DELETE FROM temp.export_refs"
REF_INSERT = "INSERT OR IGNORE INTO temp.export_refs VALUES (?)"
REFS_COUNT = "SELECT count(*) FROM temp.export_refs"
ARTIFACTS_OF_REFS = (
    "SELECT a.id, a.kind, a.size, a.checksum, a.data FROM temp.export_refs AS t"
    " JOIN artifacts AS a ON a.id = t.id ORDER BY t.id"
)

EventRow = tuple[RunId, int, "int | None", Event]


class ReadSnapshot:
    """The file as of one moment, read from a worker thread."""

    def __init__(self, conn: sqlite3.Connection, path: str, version: int) -> None:
        self.conn = conn
        self._path = path
        self._layout = 3 if version >= 3 else 2

    def _corrupt(self, what: str) -> CorruptionError:
        return CorruptionError(f"{self._path}: {what} fails its checksum; run verify")

    def counts(self) -> tuple[int, int, int]:
        """``(runs, events, artifacts)``: events as the runs' heads count them."""
        runs, events, artifacts = self.conn.execute(COUNTS).fetchone()
        return int(runs), int(events), int(artifacts)

    def run_head(self, run_id: RunId) -> int:
        """The run's head; ``NotFoundError`` (``run_not_found``) if the file lacks it."""
        row = self.conn.execute(RUNS[self._layout].format(where="WHERE r.run_id = ?"),
                                (str(run_id),)).fetchone()
        if row is None:
            raise RunNotFoundError(f"run not found: {run_id}")
        self._check_run(row)
        return int(row[4])

    def _check_run(self, row: Any) -> None:
        pk, rid, op_id, status, head, created, updated, stored = row[:8]
        try:
            ok = self._layout == 2 or cs.run_sum(pk, rid, op_id, status, head, created,
                                                 updated) == stored
        except (TypeError, ValueError, OverflowError):
            ok = False
        if not ok or not isinstance(head, int):
            raise self._corrupt(f"the row of run {rid}")

    def events(self, run_id: RunId | None = None,
               on_run: Callable[[RunId], None] | None = None) -> Iterator[EventRow]:
        """Every run's events (or ``run_id``'s), runs in creation order, each 1..head in seq
        order, checked and decoded. ``on_run(run_id)`` is called as each run starts (also for
        a run without events)."""
        one = run_id is not None
        runs = self.conn.execute(RUNS[self._layout].format(where="WHERE r.run_id = ?" if one
                                                           else ""),
                                 (str(run_id),) if one else ())
        events = self.conn.execute(EVENTS.format(
            where="WHERE run_pk = (SELECT run_pk FROM runs WHERE run_id = ?)" if one else ""),
            (str(run_id),) if one else ())
        v3 = self._layout == 3
        row: Any = next(events, None)
        for run_row in runs:
            self._check_run(run_row)
            pk, rid, head = run_row[0], run_row[1], run_row[4]
            try:
                run = RunId.parse(rid)
            except ValueError as exc:
                raise CorruptionError(f"{self._path}: the row of run {rid!r} is not "
                                      f"readable ({exc}); run verify") from exc
            if on_run is not None:
                on_run(run)
            # Rows of no run (orphans: verify reports them) and beyond the head are skipped.
            while row is not None and row[0] < pk:
                row = next(events, None)
            while row is not None and row[0] == pk:
                _, seq, ts, kind, name, stored, body = row
                row = next(events, None)
                if seq > head:
                    continue
                try:
                    ok = (cs.event_sum(rid, seq, ts, kind, name, body) if v3
                          else cs.legacy_event_sum(seq, body)) == stored
                except (TypeError, ValueError, OverflowError):
                    ok = False
                if not ok:
                    raise self._corrupt(f"event {seq} of run {run}")
                try:
                    event = decode_event(body)
                except Exception as exc:
                    raise CorruptionError(f"{self._path}: event {seq} of run {run} cannot be "
                                          f"decoded: {exc}") from exc
                yield run, seq, ts, event

    def note_refs(self, refs: Iterable[str]) -> int:
        """Note artifact ids (in a TEMP table, on disk) for ``artifacts(noted=True)``;
        returns how many distinct ids were noted."""
        self.conn.execute(REFS_TABLE)
        self.conn.execute(REFS_CLEAR)
        self.conn.executemany(REF_INSERT, ((r,) for r in refs))
        return int(self.conn.execute(REFS_COUNT).fetchone()[0])

    def artifacts(self, *, noted: bool = False
                  ) -> Iterator[tuple[str, ArtifactKind, bytes]]:
        """Every artifact, or (``noted``) those of the noted ids the file holds, in id
        order, each checked as ``get`` checks it (its id, covered by the checksum, as
        stored)."""
        cursor = self.conn.execute(ARTIFACTS_OF_REFS if noted else ARTIFACTS)
        v3 = self._layout == 3
        kinds: dict[str, ArtifactKind] = {}  # parsed kinds, a handful (bounded below)
        for aid, kind, size, stored, data in cursor:
            try:
                ok = (cs.artifact_sum(aid, kind, size, data) if v3
                      else cs.legacy_artifact_sum(data)) == stored
            except (TypeError, ValueError, OverflowError):
                ok = False
            if not ok:
                raise self._corrupt(f"artifact {aid}")
            parsed = kinds.get(kind)
            if parsed is None:
                try:
                    parsed = ArtifactKind.parse(kind)
                except ValueError as exc:
                    raise CorruptionError(f"{self._path}: artifact {aid} has an unreadable "
                                          f"kind ({exc}); run verify") from exc
                if len(kinds) < 64:
                    kinds[kind] = parsed
            yield aid, parsed, bytes(data)


def read_snapshot(conn: sqlite3.Connection, path: str, version: int,
                  fn: Callable[[ReadSnapshot], T]) -> T:
    """``fn(snapshot)`` inside one read transaction on ``conn`` (a worker thread's own)."""
    conn.execute("PRAGMA temp_store = FILE")
    conn.execute("BEGIN")
    try:
        return fn(ReadSnapshot(conn, path, version))
    finally:
        conn.execute("COMMIT")
