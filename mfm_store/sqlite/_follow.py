"""Following a SQLite file: the source and change detector behind ``SqliteStore.follow``.

Every run: the cursor is the event's row id. The events table is a rowid table written in
append order (schema 2), and one writer lock serialises every write transaction, so row ids
grow in commit order and a reader's snapshot always holds every row id up to the newest it
sees (a concurrent transaction's rows appear only at its commit, all at once, after every
earlier commit's). Prune deletes rows but never lets a row id be given out again (it keeps the
run holding the newest row, see ``_prune``). Change detection: ``PRAGMA data_version`` on the
store's reader, polled while followers wait, plus a wake-up from this process's writer.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

from ..errors import CODE_INVALID_ARGUMENT, StorageError
from ..follow import After, Batch, FollowCursor, Follower, Hub, start_cursor
from ..ids import RunId

if TYPE_CHECKING:
    from .store import SqliteStore

__all__ = ["SqliteSource", "close_hub", "follower"]

_AFTER_POSITION = (
    "SELECT e.rowid, r.run_id, e.seq, e.ts_millis, e.kind, e.name, e.checksum, e.body"
    " FROM events AS e JOIN runs AS r ON r.run_pk = e.run_pk"
    " WHERE e.rowid > ? ORDER BY e.rowid LIMIT ?"
)
_AFTER_SEQ = (
    "SELECT e.seq, e.ts_millis, e.kind, e.name, e.checksum, e.body FROM events AS e"
    " WHERE e.run_pk = (SELECT run_pk FROM runs WHERE run_id = ?) AND e.seq > ?"
    " ORDER BY e.seq LIMIT ?"
)
_hubs: weakref.WeakKeyDictionary[SqliteStore, Hub] = weakref.WeakKeyDictionary()

_LAST_POSITION = "SELECT coalesce(max(rowid), 0) FROM events"
_HEAD = "SELECT head_seq FROM runs WHERE run_id = ?"


class SqliteSource:
    def __init__(self, store: SqliteStore) -> None:
        self._store = store
        if store.schema_version < 2:
            raise StorageError(f"{store.path}: a schema-1 file (opened read-only) has no "
                               "append order to follow", code=CODE_INVALID_ARGUMENT)

    async def end(self, run_id: str | None) -> FollowCursor:
        if run_id is None:
            (last,), = await self._store._fetchall(_LAST_POSITION, ())
            return FollowCursor(None, int(last))
        rows = await self._store._fetchall(_HEAD, (run_id,))
        return FollowCursor(run_id, int(rows[0][0]) if rows else 0)

    async def fetch(self, cursor: FollowCursor, limit: int) -> Batch:
        store = self._store
        if cursor.run_id is not None:
            rid = cursor.run_id
            run_id = RunId.parse(rid)
            rows = await store._fetchall(_AFTER_SEQ, (rid, cursor.position, limit))
            return [(store._decode(run_id, rid, row), FollowCursor(rid, row[0]))
                    for row in rows]
        out: Batch = []
        for row in await store._fetchall(_AFTER_POSITION, (cursor.position, limit)):
            rid = row[1]
            out.append((store._decode(RunId.parse(rid), rid, row[2:]),
                        FollowCursor(None, row[0])))
        return out

    async def changed(self) -> bool:
        """Whether another connection committed since the last call (``data_version``)."""
        (version,), = await self._store._fetchall("PRAGMA data_version", ())
        before, self._version = getattr(self, "_version", None), version
        return bool(version != before)  # the first call says yes: a commit may precede it


def follower(store: SqliteStore, run_id: RunId | str | None, after: After) -> Follower:
    """``store.follow(run_id, after=after)``; the store's hub is made on first use."""
    cursor, at_end = start_cursor(run_id, after, global_kind="position")
    source = SqliteSource(store)
    hub = _hubs.get(store)
    if hub is None or hub.closed:
        hub = _hubs[store] = Hub(source.changed, min_interval=0.002, max_interval=0.1)
        if store._writer is not None:
            store._writer.on_commit = hub.notify
    return Follower(source, hub, cursor, at_end)


async def close_hub(store: SqliteStore) -> None:
    """End the store's followers (called by ``close``)."""
    hub = _hubs.pop(store, None)
    if hub is not None:
        await hub.close()
