"""``PostgresStore.prune``: the SQLite store's prune on PostgreSQL (schema 2).

One transaction sets ``mfm.prune = 'on'`` locally (the append-only triggers then let its
DELETEs through; nothing else sets it), locks the chosen run rows, and deletes the bindings,
events and rows of those still finished at the head they were chosen at. Then the artifacts
no remaining run references, as ``gc`` deletes (a SHARE lock on ``runs`` while it re-checks
what was written since its snapshot). PostgreSQL reuses the freed space itself (autovacuum).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING

from .. import _rules
from ..events import decode_event
from ..ids import ArtifactId, RunId
from ..retention import KEPT_CHANGED, PruneReport, archive, choose_runs
from ..sqlite import SqliteStore  # an archive file is staged in SQLite scratch files
from ..stores import Store
from . import _queries as q
from ._maintain import refs_since, unreferenced

if TYPE_CHECKING:
    from .store import PostgresStore

__all__ = ["prune"]


async def prune(store: PostgresStore, run_ids: Iterable[RunId | str] | None, *,
                finished_before: int | float | datetime | None, keep_last: int | None,
                archive_to: str | os.PathLike[str] | Store | None, dry_run: bool,
                artifact_min_age_seconds: float) -> PruneReport:
    if not dry_run:
        store._writable()
    chosen, kept = await choose_runs(store, run_ids, finished_before=finished_before,
                                       keep_last=keep_last)
    if dry_run or not chosen:
        return PruneReport(runs=tuple(r.run_id for r in chosen), kept=tuple(kept),
                           events=sum(r.head_seq for r in chosen))
    where = None if archive_to is None else await archive(
        store, chosen, archive_to, lambda p: SqliteStore.open(p, durability="normal"))
    wanted = {str(r.run_id): r.head_seq for r in chosen}
    refs: set[str] = set()
    pruned: list[RunId] = []
    events = bindings = 0
    async with store._conn(writing=True) as conn, conn.transaction():
        await conn.execute("SET LOCAL mfm.prune = 'on'")
        cur = await conn.execute(
            "SELECT run_pk, run_id, head_seq, status FROM runs WHERE run_id = ANY(%s)"
            " ORDER BY run_pk FOR UPDATE", (list(wanted),))
        pks = []
        for pk, rid, head, status in await cur.fetchall():
            if status == _rules.STATUS_RUNNING or head != wanted[rid]:
                kept.append((RunId.parse(rid), KEPT_CHANGED))
                continue
            pks.append(pk)
            pruned.append(RunId.parse(rid))
        if pks:
            cur = await conn.execute("SELECT body FROM events WHERE run_pk = ANY(%s)", (pks,))
            for (body,) in await cur.fetchall():
                refs.update(_rules.artifact_refs(decode_event(bytes(body))))
            cur = await conn.execute(
                "DELETE FROM fact_bindings WHERE run_pk = ANY(%s) RETURNING payload_id", (pks,))
            payloads = [p for (p,) in await cur.fetchall()]
            refs.update(payloads)
            bindings = len(payloads)
            cur = await conn.execute("DELETE FROM events WHERE run_pk = ANY(%s)", (pks,))
            events = cur.rowcount
            await conn.execute("DELETE FROM runs WHERE run_pk = ANY(%s)", (pks,))
    deleted: dict[str, int] = {}
    if refs:
        cutoff = _rules.now_millis() - int(artifact_min_age_seconds * 1000)
        async with store._conn(writing=False) as conn:
            found, heads = await unreferenced(conn, cutoff)
        candidates = {aid: size for aid, size in found if aid in refs}
        if candidates:
            async with store._conn(writing=True) as conn, conn.transaction():
                await conn.execute(q.GC_LOCK)
                cur = await conn.execute(q.RUN_HEADS)
                for pk, head in await cur.fetchall():
                    since = heads.get(pk, 0)
                    if head > since:
                        for ref in await refs_since(conn, pk, since):
                            candidates.pop(ref, None)
                cur = await conn.execute(
                    "DELETE FROM artifacts WHERE id = ANY(%s) AND created_ms <= %s"
                    " RETURNING id, size", (list(candidates), cutoff))
                deleted = {aid: int(size) for aid, size in await cur.fetchall()}
    return PruneReport(runs=tuple(pruned), kept=tuple(kept), events=events,
                       fact_bindings=bindings,
                       artifacts=tuple(sorted(ArtifactId(a) for a in deleted)),
                       artifact_bytes=sum(deleted.values()), archive=where, applied=True)
