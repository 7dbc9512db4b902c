"""``SqliteStore.prune``: delete finished runs in one transaction, then their artifacts no
remaining run references, then give the freed pages back without a full ``VACUUM``.

The run transaction names each run in ``prune_grants`` (schema 4: the triggers let a DELETE of
events, bindings and run rows through only for a granted run, and refuse a grant for a run that
is still running), deletes, and removes the grants before COMMIT. The run holding the newest
event row is kept until something newer is written: SQLite would otherwise give that row id
out again, and a follower's cursor (the row id) must never be reused.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .. import _rules
from ..errors import CODE_INVALID_ARGUMENT, StorageError
from ..events import decode_event
from ..ids import ArtifactId, RunId
from ..retention import KEPT_CHANGED, KEPT_NEWEST, PruneReport, archive, choose_runs
from ..stores import Store

if TYPE_CHECKING:
    from .store import SqliteStore

__all__ = ["prune"]

_VACUUM_STEP = 2000  # pages per incremental_vacuum transaction: the write lock stays short
_REFERENCED = "SELECT 1 FROM fact_bindings WHERE payload_id = ? LIMIT 1"


def _delete_runs(cur: sqlite3.Cursor, wanted: dict[str, int]
                 ) -> tuple[list[str], list[tuple[str, str]], int, int, set[str]]:
    """The run transaction: ``(pruned, kept, events, bindings, artifact refs)``."""
    newest = cur.execute("SELECT run_pk FROM events ORDER BY rowid DESC LIMIT 1").fetchone()
    pruned: list[str] = []
    kept: list[tuple[str, str]] = []
    events = bindings = 0
    refs: set[str] = set()
    for rid, head in wanted.items():
        row = cur.execute("SELECT run_pk, head_seq, status FROM runs WHERE run_id = ?",
                          (rid,)).fetchone()
        if row is None:
            continue  # pruned meanwhile
        pk, now_head, status = row
        if status == _rules.STATUS_RUNNING or now_head != head:
            kept.append((rid, KEPT_CHANGED))
            continue
        if newest is not None and newest[0] == pk:
            kept.append((rid, KEPT_NEWEST))
            continue
        for (body,) in cur.execute("SELECT body FROM events WHERE run_pk = ?", (pk,)):
            refs.update(_rules.artifact_refs(decode_event(body)))
        refs.update(p for (p,) in cur.execute(
            "SELECT payload_id FROM fact_bindings WHERE run_pk = ?", (pk,)))
        cur.execute("INSERT INTO prune_grants (run_pk) VALUES (?)", (pk,))
        bindings += cur.execute("DELETE FROM fact_bindings WHERE run_pk = ?", (pk,)).rowcount
        events += cur.execute("DELETE FROM events WHERE run_pk = ?", (pk,)).rowcount
        cur.execute("DELETE FROM runs WHERE run_pk = ?", (pk,))
        cur.execute("DELETE FROM prune_grants WHERE run_pk = ?", (pk,))
        pruned.append(rid)
    return pruned, kept, events, bindings, refs


# What was written after the snapshot of _unreferenced: events past its newest row id (row
# ids only grow: the run holding the newest row is never pruned) and their bindings.
_EVENTS_SINCE = "SELECT body FROM events WHERE rowid > ?"
_BINDINGS_SINCE = ("SELECT b.payload_id FROM events AS e JOIN fact_bindings AS b"
                   " ON b.run_pk = e.run_pk AND b.seq = e.seq WHERE e.rowid > ?")


def _unreferenced(conn: sqlite3.Connection, candidates: set[str]
                  ) -> tuple[dict[str, int], int]:
    """In one read snapshot: which candidates no binding or event names; the newest event
    row id (what is written later is checked again before deleting)."""
    conn.execute("BEGIN")
    try:
        (top,) = conn.execute("SELECT coalesce(max(rowid), 0) FROM events").fetchone()
        left = {c for c in candidates
                if conn.execute(_REFERENCED, (c,)).fetchone() is None}
        if left:
            for (body,) in conn.execute("SELECT body FROM events"):
                left.difference_update(_rules.artifact_refs(decode_event(body)))
                if not left:
                    break
        sizes = {aid: size for aid in left
                 for (size,) in conn.execute("SELECT size FROM artifacts WHERE id = ?", (aid,))}
    finally:
        conn.execute("COMMIT")
    return sizes, int(top)


async def prune(store: SqliteStore, run_ids: Iterable[RunId | str] | None, *,
                finished_before: int | float | datetime | None, keep_last: int | None,
                archive_to: str | os.PathLike[str] | Store | None, dry_run: bool,
                artifact_min_age_seconds: float) -> PruneReport:
    if not dry_run:
        store._writable()  # raises on a read-only or closed store
    if store.schema_version < 4 and not dry_run:
        raise StorageError(f"{store.path}: prune needs schema 4 (open the file writable once)",
                           code=CODE_INVALID_ARGUMENT)
    chosen, kept = await choose_runs(store, run_ids, finished_before=finished_before,
                                       keep_last=keep_last)
    size_before = store.path.stat().st_size
    if dry_run or not chosen:
        return PruneReport(runs=tuple(r.run_id for r in chosen), kept=tuple(kept),
                           events=sum(r.head_seq for r in chosen), applied=False,
                           file_bytes_before=size_before, file_bytes_after=size_before)
    where = None
    if archive_to is not None:
        where = await archive(store, chosen, archive_to,
                              lambda p: type(store).open(p, durability="normal"))
    wanted = {str(r.run_id): r.head_seq for r in chosen}
    writer = store._writable()
    pruned, kept_now, events, bindings, refs = await writer.run(
        lambda cur: _delete_runs(cur, wanted))
    kept += [(RunId.parse(r), why) for r, why in kept_now]
    deleted: dict[str, int] = {}
    if refs:
        cutoff = _rules.now_millis() - int(artifact_min_age_seconds * 1000)
        sizes, top = await store._in_thread(_unreferenced, refs)
        if sizes:

            def drop(cur: sqlite3.Cursor) -> None:
                for (payload,) in cur.execute(_BINDINGS_SINCE, (top,)):
                    sizes.pop(payload, None)
                for (body,) in cur.execute(_EVENTS_SINCE, (top,)):
                    for ref in _rules.artifact_refs(decode_event(body)):
                        sizes.pop(ref, None)
                for aid in list(sizes):
                    if cur.execute("DELETE FROM artifacts WHERE id = ? AND created_ms <= ?",
                                   (aid, cutoff)).rowcount:
                        deleted[aid] = sizes[aid]

            await writer.run(drop)
    await _reclaim(store)
    return PruneReport(runs=tuple(RunId.parse(r) for r in pruned), kept=tuple(kept),
                       events=events, fact_bindings=bindings,
                       artifacts=tuple(sorted(ArtifactId(a) for a in deleted)),
                       artifact_bytes=sum(deleted.values()), archive=where, applied=True,
                       file_bytes_before=size_before, file_bytes_after=store.path.stat().st_size)


async def _reclaim(store: SqliteStore) -> None:
    """Free pages back to the file system (``auto_vacuum = INCREMENTAL`` files: every file
    this version creates), a few thousand pages per transaction; then a checkpoint that waits
    for no reader. A file created before keeps its free pages for new rows."""
    writer = store._writable()

    def mode(cur: sqlite3.Cursor) -> tuple[int, int]:
        auto = cur.execute("PRAGMA auto_vacuum").fetchone()[0]
        free = cur.execute("PRAGMA freelist_count").fetchone()[0]
        return int(auto), int(free)

    auto, free = await writer.run(mode)
    if auto != 2:
        return
    while free > 0:

        def step(cur: sqlite3.Cursor) -> int:
            cur.execute(f"PRAGMA incremental_vacuum({_VACUUM_STEP})").fetchall()
            return int(cur.execute("PRAGMA freelist_count").fetchone()[0])

        left = await writer.run(step)
        if left >= free:
            break
        free = left
    await store._in_thread(_checkpoint)


def _checkpoint(conn: sqlite3.Connection) -> Any:
    return conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
