"""Retention: which finished runs to prune, and archiving them first (``store.prune``).

Backend-neutral: :func:`choose` picks runs from ``list_runs`` by a policy, :func:`archive`
copies them into an export file or another store and checks the copy before anything is
deleted. Each backend's ``prune`` then deletes the runs' events, bindings and rows in one
transaction, and the artifacts no remaining run references. A running run is never pruned.
"""

from __future__ import annotations

import heapq
import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from . import _rules
from .errors import (
    CODE_ARCHIVE_MISMATCH,
    CODE_DESTINATION_EXISTS,
    CODE_INVALID_ARGUMENT,
    StorageError,
)
from .ids import ArtifactId, RunId
from .stores import EventStore, RunSummary, Store, iter_runs

if TYPE_CHECKING:
    from .transfer import ExportableStore

__all__ = ["CODE_ARCHIVE_MISMATCH", "PruneReport", "ScratchStore", "archive", "choose",
           "choose_runs", "cutoff_millis"]

# Why a run asked for is kept.
KEPT_RUNNING = "running"
KEPT_UNKNOWN = "not_found"
KEPT_NEWEST = "holds_newest_event"
KEPT_CHANGED = "changed_since_archived"


@attrs.frozen(kw_only=True)
class PruneReport:
    """What a prune removed (or, ``applied=False``, would remove).

    ``kept``: runs asked for (by id) or chosen but not pruned, with the reason. ``events`` and
    ``fact_bindings`` count deleted rows (a dry run counts events by the runs' heads and
    bindings as 0). ``artifacts``: those deleted because no remaining run references them.
    """

    runs: tuple[RunId, ...]
    kept: tuple[tuple[RunId, str], ...] = ()
    events: int = 0
    fact_bindings: int = 0
    artifacts: tuple[ArtifactId, ...] = ()
    artifact_bytes: int = 0
    archive: str | None = None
    applied: bool = False
    file_bytes_before: int | None = None
    file_bytes_after: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"runs": [str(r) for r in self.runs],
                "kept": [{"run_id": str(r), "reason": why} for r, why in self.kept],
                "events": self.events, "fact_bindings": self.fact_bindings,
                "artifacts": list(self.artifacts), "artifact_bytes": self.artifact_bytes,
                "archive": self.archive, "applied": self.applied,
                "file_bytes_before": self.file_bytes_before,
                "file_bytes_after": self.file_bytes_after}


def cutoff_millis(value: int | float | datetime | None) -> int | None:
    """``finished_before`` as Unix milliseconds (an int or float is taken as milliseconds)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise StorageError("finished_before must be an aware datetime",
                               code=CODE_INVALID_ARGUMENT)
        return int(value.timestamp() * 1000)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise StorageError(f"finished_before must be a datetime or Unix milliseconds, not "
                           f"{value!r}", code=CODE_INVALID_ARGUMENT)
    return int(value)


def choose(runs: Sequence[RunSummary], run_ids: Iterable[RunId | str] | None, *,
           finished_before: int | float | datetime | None, keep_last: int | None
           ) -> tuple[list[RunSummary], list[tuple[RunId, str]]]:
    """``(to prune, kept with reason)``: the runs of ``run_ids``, or by policy: finished runs
    last updated before ``finished_before`` (if given), except the ``keep_last`` most recently
    finished. Running runs are never chosen (listed as kept when asked for by id)."""
    cutoff = cutoff_millis(finished_before)
    if keep_last is not None and (isinstance(keep_last, bool) or not isinstance(keep_last, int)
                                  or keep_last < 0):
        raise StorageError(f"keep_last must be an integer >= 0, not {keep_last!r}",
                           code=CODE_INVALID_ARGUMENT)
    by_id = {str(r.run_id): r for r in runs}
    kept: list[tuple[RunId, str]] = []
    if run_ids is not None:
        if cutoff is not None or keep_last is not None:
            raise StorageError("give run ids or a policy (finished_before, keep_last), not "
                               "both", code=CODE_INVALID_ARGUMENT)
        chosen: list[RunSummary] = []
        for value in run_ids:
            rid = _rules.run_id_of(value if isinstance(value, RunId) else RunId.parse(value))
            summary = by_id.get(str(rid))
            if summary is None:
                kept.append((rid, KEPT_UNKNOWN))
            elif summary.status == _rules.STATUS_RUNNING:
                kept.append((rid, KEPT_RUNNING))
            elif summary not in chosen:
                chosen.append(summary)
        return chosen, kept
    if cutoff is None and keep_last is None:
        raise StorageError("prune needs run ids or a policy (finished_before, keep_last)",
                           code=CODE_INVALID_ARGUMENT)
    finished = sorted((r for r in runs if r.status != _rules.STATUS_RUNNING),
                      key=lambda r: r.updated_millis)  # stable: ties in list order
    if keep_last:
        finished = finished[:-keep_last]
    if cutoff is not None:
        finished = [r for r in finished if r.updated_millis < cutoff]
    return finished, kept


async def choose_runs(store: EventStore, run_ids: Iterable[RunId | str] | None, *,
                      finished_before: int | float | datetime | None, keep_last: int | None
                      ) -> tuple[list[RunSummary], list[tuple[RunId, str]]]:
    """:func:`choose` over ``store``'s runs read a page at a time (:func:`iter_runs`), with
    the same result and errors: memory holds the runs asked for or chosen and the
    ``keep_last`` newest finished ones, never every run."""
    asked = None if run_ids is None else list(run_ids)
    choose([], asked, finished_before=finished_before, keep_last=keep_last)  # the checks
    if asked is not None:
        ids = {str(value if isinstance(value, RunId) else RunId.parse(value)) for value in asked}
        found = [r async for r in iter_runs(store) if str(r.run_id) in ids]
        return choose(found, asked, finished_before=None, keep_last=None)
    cutoff = cutoff_millis(finished_before)
    # Keys (updated, place in creation order) give choose's order: sorted by update time,
    # ties in list order. The keep_last largest keys of all finished runs are kept.
    candidates: list[tuple[int, int, RunSummary]] = []
    newest: list[tuple[int, int]] = []  # min-heap of the keep_last largest keys
    place = 0
    async for r in iter_runs(store):
        place += 1
        if r.status == _rules.STATUS_RUNNING:
            continue
        key = (r.updated_millis, place)
        if keep_last:
            if len(newest) < keep_last:
                heapq.heappush(newest, key)
            elif key > newest[0]:
                heapq.heappushpop(newest, key)
        if cutoff is None or r.updated_millis < cutoff:
            candidates.append((r.updated_millis, place, r))
    spared = set(newest)
    candidates.sort(key=lambda item: (item[0], item[1]))
    return [r for updated, at, r in candidates if (updated, at) not in spared], []


async def _same_runs(src: Store, copy: Store, runs: Sequence[RunSummary]) -> None:
    for r in runs:
        ours = [e.to_json() for e in await src.read_range(r.run_id, 1, r.head_seq)]
        theirs = [e.to_json() for e in await copy.read_range(r.run_id, 1, r.head_seq)]
        if ours != theirs:
            raise StorageError(f"the archive of run {r.run_id} differs from the store; "
                               "nothing was pruned", code=CODE_ARCHIVE_MISMATCH)
        facts = await src.facts(r.run_id)
        if facts != await copy.facts(r.run_id):
            raise StorageError(f"the archive's fact bindings of run {r.run_id} differ; "
                               "nothing was pruned", code=CODE_ARCHIVE_MISMATCH)
    for r in runs:
        for aid in set((await src.facts(r.run_id)).values()):
            if not await copy.exists(aid):
                raise StorageError(f"the archive lacks artifact {aid}; nothing was pruned",
                                   code=CODE_ARCHIVE_MISMATCH)


ScratchStore = Callable[[Path], AbstractAsyncContextManager["ExportableStore"]]


async def archive(store: Store, runs: Sequence[RunSummary],
                  target: str | os.PathLike[str] | Store, scratch: ScratchStore) -> str:
    """Copy ``runs`` (with their artifacts) into ``target`` and check the copy: a new export
    file (JSON Lines, :mod:`mfm_store.transfer`) or another store (:func:`mfm_store.sync.sync`).
    An export file is staged and checked in two stores ``scratch(path)`` opens on disk (the
    backends pass ``SqliteStore.open``: retention imports no backend). Raises
    ``StorageError`` (``archive_mismatch``, ``destination_exists``) if the copy is not there
    as in the store. Returns a description of the target."""
    from .sync import sync
    from .transfer import export_jsonl, import_jsonl

    ids = [r.run_id for r in runs]
    if not isinstance(target, str | os.PathLike):
        report = await sync(store, target, runs=ids)
        if not report.ok:
            raise StorageError(f"archiving into the other store failed: {report.problems[0]}",
                               code=CODE_ARCHIVE_MISMATCH)
        await _same_runs(store, target, runs)
        return repr(target)
    path = Path(target)
    if path.exists():
        raise StorageError(f"{path}: the archive exists; give a new file",
                           code=CODE_DESTINATION_EXISTS)
    with tempfile.TemporaryDirectory(prefix="mfm-archive-", dir=path.parent) as tmp:
        partial = Path(tmp) / "archive.jsonl"
        async with scratch(Path(tmp) / "stage.db") as stage:
            report = await sync(store, stage, runs=ids)
            if not report.ok:
                raise StorageError(f"archiving failed: {report.problems[0]}",
                                   code=CODE_ARCHIVE_MISMATCH)
            with partial.open("wb") as out:
                await export_jsonl(stage, out)
                out.flush()
                os.fsync(out.fileno())
        async with scratch(Path(tmp) / "check.db") as check:
            with partial.open("rb") as source:
                await import_jsonl(check, source)
            await _same_runs(store, check, runs)
        os.link(partial, path)  # fails if it appeared meanwhile: never overwritten
        _fsync_dir(path.parent)
    return str(path)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
