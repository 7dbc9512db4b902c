"""``MemoryStore.follow`` and ``MemoryStore.prune``: the reference behaviour in tests."""

from __future__ import annotations

import os
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING

from . import _rules
from .follow import After, Batch, FollowCursor, Follower, Hub, start_cursor
from .ids import ArtifactId, RunId
from .retention import KEPT_CHANGED, PruneReport, archive, choose_runs
from .sqlite import SqliteStore  # an archive file is staged in SQLite scratch files
from .stores import Store

if TYPE_CHECKING:
    from .memory import MemoryStore

__all__ = ["follower", "prune"]


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


async def prune(store: MemoryStore, run_ids: Iterable[RunId | str] | None, *,
                finished_before: int | float | datetime | None, keep_last: int | None,
                archive_to: str | os.PathLike[str] | Store | None, dry_run: bool
                ) -> PruneReport:
    """``MemoryStore.prune``: as the SQLite store's, without files or artifact ages."""
    store._check_open()
    chosen, kept = await choose_runs(store, run_ids, finished_before=finished_before,
                                       keep_last=keep_last)
    if dry_run or not chosen:
        return PruneReport(runs=tuple(r.run_id for r in chosen), kept=tuple(kept),
                           events=sum(r.head_seq for r in chosen))
    where = None if archive_to is None else await archive(
        store, chosen, archive_to, lambda p: SqliteStore.open(p, durability="normal"))
    pruned: list[RunId] = []
    events = bindings = 0
    refs: set[str] = set()
    async with store._lock:
        for r in chosen:
            run = store._runs.get(r.run_id)
            if run is None:
                continue
            if run.status == _rules.STATUS_RUNNING or len(run.events) != r.head_seq:
                kept.append((r.run_id, KEPT_CHANGED))
                continue
            for env in run.events:
                refs.update(_rules.artifact_refs(env.event))
            refs.update(pid for pid, _ in run.facts.values())
            events += len(run.events)
            bindings += len(run.facts)
            del store._runs[r.run_id]
            pruned.append(r.run_id)
        gone = set(pruned)
        store._log[:] = [None if env is None or env.run_id in gone else env
                         for env in store._log]
        for run in store._runs.values():
            for env in run.events:
                refs.difference_update(_rules.artifact_refs(env.event))
            refs.difference_update(pid for pid, _ in run.facts.values())
        deleted = {aid: len(store._artifacts[ArtifactId(aid)][1]) for aid in refs
                   if ArtifactId(aid) in store._artifacts}
        for aid in deleted:
            del store._artifacts[ArtifactId(aid)]
    return PruneReport(runs=tuple(pruned), kept=tuple(kept), events=events,
                       fact_bindings=bindings,
                       artifacts=tuple(sorted(ArtifactId(a) for a in deleted)),
                       artifact_bytes=sum(deleted.values()), archive=where, applied=True)
