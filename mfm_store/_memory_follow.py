"""``MemoryStore.follow`` and ``MemoryStore.prune``: the reference behaviour in tests."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .follow import After, Batch, FollowCursor, Follower, Hub, start_cursor
from .ids import RunId

if TYPE_CHECKING:
    from .memory import MemoryStore

__all__ = ["follower"]


class MemorySource:
    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    async def end(self, run_id: str | None) -> FollowCursor:
        if run_id is None:
            return FollowCursor(None, len(self._store._log))
        return FollowCursor(run_id, await self._store.head_seq(RunId.parse(run_id)))

    async def fetch(self, cursor: FollowCursor, limit: int) -> Batch:
        store = self._store
        store._check_open()
        if cursor.run_id is not None:
            envs = await store.read_range(RunId.parse(cursor.run_id), cursor.position + 1,
                                          cursor.position + limit)
            return [(env, FollowCursor(cursor.run_id, env.seq)) for env in envs]
        out: Batch = []
        log = store._log
        pos = cursor.position
        while pos < len(log) and len(out) < limit:
            env = log[pos]
            pos += 1
            if env is not None:
                out.append((env, FollowCursor(None, pos)))
        return out


def follower(store: MemoryStore, run_id: RunId | str | None, after: After) -> Follower:
    cursor, at_end = start_cursor(run_id, after, global_kind="position")
    if store._hub is None:
        store._hub = Hub(notify_only=True)
    return Follower(MemorySource(store), store._hub, cursor, at_end)
