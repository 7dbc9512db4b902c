"""``PostgresStore.follow``: polling, the correctness path (no notification is relied on).

One run: by seq (appends to a run are serialised by its row's conditional head update, so a
seq is visible only after every lower seq). Every run: transactions may commit out of any id
order, so there is no global position a reader could resume from without a gap; the cursor is
each run's seq, and a poll reads the heads of the runs (one small query) and the new events of
the runs whose head moved. Each run's events come in seq order; across runs, in the order the
polls find them.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

from ..follow import After, Follower, Hub, StoreSource, start_cursor
from ..ids import RunId

if TYPE_CHECKING:
    from .store import PostgresStore

__all__ = ["close_hub", "follower"]

_hubs: weakref.WeakKeyDictionary[PostgresStore, Hub] = weakref.WeakKeyDictionary()


def follower(store: PostgresStore, run_id: RunId | str | None, after: After) -> Follower:
    cursor, at_end = start_cursor(run_id, after, global_kind="seqs")
    hub = _hubs.get(store)
    if hub is None or hub.closed:
        hub = _hubs[store] = Hub(min_interval=0.005, max_interval=0.2)
    return Follower(StoreSource(store), hub, cursor, at_end)


async def close_hub(store: PostgresStore) -> None:
    hub = _hubs.pop(store, None)
    if hub is not None:
        await hub.close()
