"""``PostgresStore.follow``: polling, the correctness path (no notification is relied on).

One run: by seq (appends to a run are serialised by its row's conditional head update, so a
seq is visible only after every lower seq). Every run: transactions may commit out of any id
order, so there is no global position a reader could resume from without a gap; the cursor is
each run's seq, and a poll reads the heads of the runs (a page at a time) and the new events of
the runs whose head moved. Each run's events come in seq order; across runs, in the order the
polls find them (least recently updated first).
"""

from __future__ import annotations

import heapq
import weakref
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

from ..follow import After, Batch, FollowCursor, Follower, Hub, StoreSource, start_cursor
from ..ids import RunId
from ..stores import RunSummary, iter_runs

if TYPE_CHECKING:
    from .store import PostgresStore

__all__ = ["close_hub", "follower"]

_RUN_PAGE = 1000  # runs per list_runs page of a poll
_hubs: weakref.WeakKeyDictionary[PostgresStore, Hub] = weakref.WeakKeyDictionary()


class _Seqs(Mapping[str, int]):
    """A cursor's seqs: the poll's shared base and, linked, the seq each event of the batch
    set, so the cursor after each event costs one link instead of a copy of every run's seq."""

    def __init__(self, base: Mapping[str, int], parent: _Seqs | None, run: str,
                 seq: int) -> None:
        self._base, self._parent, self._run, self._seq = base, parent, run, seq

    def flat(self) -> dict[str, int]:
        changes: dict[str, int] = {}
        node: _Seqs | None = self
        while node is not None:
            changes.setdefault(node._run, node._seq)  # the latest link wins
            node = node._parent
        return {**self._base, **changes}

    def __getitem__(self, key: str) -> int:
        node: _Seqs | None = self
        while node is not None:
            if node._run == key:
                return node._seq
            node = node._parent
        return self._base[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.flat())

    def __len__(self) -> int:
        return len(self.flat())


class _PagedSource(StoreSource):
    """Every run: the heads read a page at a time (:func:`iter_runs`); of the runs whose head
    moved, only the ``limit`` least recently updated are kept, so a poll holds the cursor and
    at most ``limit`` runs, never every run's summary."""

    def __init__(self, store: PostgresStore) -> None:
        super().__init__(store)
        self._pg = store

    async def end(self, run_id: str | None) -> FollowCursor:
        if run_id is not None:
            return await super().end(run_id)
        return FollowCursor(None, 0, {str(r.run_id): r.head_seq
                                      async for r in iter_runs(self._pg, page_size=_RUN_PAGE)})

    async def fetch(self, cursor: FollowCursor, limit: int) -> Batch:
        if cursor.run_id is not None:
            return await super().fetch(cursor, limit)
        seqs = cursor.seqs
        old = seqs.flat() if isinstance(seqs, _Seqs) else (seqs or {})
        base: dict[str, int] = {}  # the cursor's runs still held (pruned runs drop out)
        moved: list[tuple[int, int, RunSummary]] = []  # max-heap by (updated, place)
        place = 0
        async for r in iter_runs(self._pg, page_size=_RUN_PAGE):
            place += 1
            rid = str(r.run_id)
            seq = old.get(rid)
            if seq is not None:
                base[rid] = seq
            if r.head_seq <= (seq or 0):
                continue
            item = (-r.updated_millis, -place, r)
            if len(moved) < limit:
                heapq.heappush(moved, item)
            elif item[:2] > moved[0][:2]:
                heapq.heapreplace(moved, item)
        out: Batch = []
        last: _Seqs | None = None
        for _u, _p, r in sorted(moved, key=lambda item: (-item[0], -item[1])):
            rid = str(r.run_id)
            start = base.get(rid, 0) + 1
            for env in await self._pg.read_range(r.run_id, start, start + limit - len(out) - 1):
                last = _Seqs(base, last, rid, env.seq)
                out.append((env, FollowCursor(None, 0, last)))
            if len(out) >= limit:
                break
        return out


def follower(store: PostgresStore, run_id: RunId | str | None, after: After) -> Follower:
    cursor, at_end = start_cursor(run_id, after, global_kind="seqs")
    hub = _hubs.get(store)
    if hub is None or hub.closed:
        hub = _hubs[store] = Hub(min_interval=0.005, max_interval=0.2)
    return Follower(_PagedSource(store), hub, cursor, at_end)


async def close_hub(store: PostgresStore) -> None:
    hub = _hubs.pop(store, None)
    if hub is not None:
        await hub.close()
