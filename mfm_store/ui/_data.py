"""Reading the store for the pages: a paged runs index, cached run models and artifacts, and
the verify job. Only the store's public read methods are called; nothing is ever written.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import json
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from ..engine.manifest import RetryPolicy
from ..errors import MfmError
from ..events import RunCompleted
from ..ids import ArtifactId, RunId
from ..stores import RunSummary, Store, iter_runs
from ._model import RunBuilder, RunModel

__all__ = ["ArtifactView", "Inspector", "RunView", "RunsPage", "VerifyJob"]

RUNS_PAGE_SIZE = 50
_INDEX_MAX_AGE = 5.0  # seconds a runs list is served before a refresh starts in the background
_PREVIEW_RUNS = 1000  # newest runs served while the whole list loads
_LOAD_PAGE = 5000  # runs per list_runs call when reading the whole list
_CACHE_BYTES = 32 * 1024 * 1024
_CACHE_ITEM = 1024 * 1024
_RUN_CACHE = 4
_FIRST_CHUNK = 500  # events read for the first page of a run
_MAX_CHUNK = 20_000
JSON_PREVIEW_LIMIT = 2 * 1024 * 1024


class _RunsSnapshot:
    """The runs list as read at one moment, most recently updated first.

    ``partial``: only the newest runs (by creation) were read so far; the page says so."""

    def __init__(self, runs: list[RunSummary], signature: object,
                 partial: bool = False) -> None:
        self.runs = runs
        self.signature = signature
        self.partial = partial
        self.loaded_at = time.time()
        self.monotonic = time.monotonic()
        self.statuses: dict[str, int] = {}
        ops: set[str] = set()
        for r in runs:
            self.statuses[r.status] = self.statuses.get(r.status, 0) + 1
            if r.op_id is not None:
                ops.add(r.op_id)
        self.ops = sorted(ops)

    @functools.cached_property
    def ids(self) -> list[str]:
        """``str(run_id)`` of each run, in list order (made on the first search)."""
        return [str(r.run_id) for r in self.runs]

    @functools.cached_property
    def by_id(self) -> dict[str, RunSummary]:
        return dict(zip(self.ids, self.runs, strict=True))


def _by_update(runs: list[RunSummary]) -> list[RunSummary]:
    """Most recently updated first; among equal times, newest first (``runs`` come newest
    first)."""
    runs.sort(key=lambda r: r.updated_millis, reverse=True)
    return runs


@attrs.frozen(kw_only=True)
class RunsPage:
    """One page of the runs list after filtering."""

    runs: list[RunSummary]
    total: int  # runs matching the filter
    all_runs: int
    offset: int
    ops: list[str]
    statuses: dict[str, int]
    loaded_at: float
    partial: bool = False  # only the newest runs: the whole list is still loading


class _RunsIndex:
    """Every run, read once (a page of ``list_runs`` at a time) and served in pages; read
    again in the background when old.

    Reading every run takes a while on a large store (about 0.35 s for 50k runs here), so the
    first page does not wait for it: it is served at once from the newest runs
    (``list_runs(newest_first=True, limit=...)``, one indexed query), marked as partial, while
    the whole list loads in the background; filters wait for the whole list. The list is read
    again, in the background, when it is more than a few seconds old and the file (or its WAL)
    changed since: a copied file is read once; for a live file the list is at most a few
    seconds behind (the page says when it was read).
    """

    def __init__(self, store: Store, max_age: float = _INDEX_MAX_AGE) -> None:
        self._store = store
        self._max_age = max_age
        self._snapshot: _RunsSnapshot | None = None
        self._preview: _RunsSnapshot | None = None
        self._loading: asyncio.Task[_RunsSnapshot] | None = None

    def _signature(self) -> object:
        """For a store in a file: the size and time of the file and its WAL, which change
        with every commit; else ``None`` (re-read by age alone)."""
        path = getattr(self._store, "path", None)
        if not isinstance(path, Path):
            return None
        marks: list[tuple[int, int] | None] = []
        for p in (path, Path(f"{path}-wal")):
            try:
                st = p.stat()
            except OSError:
                marks.append(None)
            else:
                marks.append((st.st_size, st.st_mtime_ns))
        return tuple(marks)

    async def _load(self) -> _RunsSnapshot:
        signature = self._signature()
        runs = [r async for r in iter_runs(self._store, page_size=_LOAD_PAGE, newest_first=True)]
        snap = _RunsSnapshot(_by_update(runs), signature)
        self._snapshot = snap
        return snap

    async def _first(self) -> _RunsSnapshot:
        """The snapshot to serve before the whole list is read: the newest runs (all of
        them, and then the whole list, on a store that holds fewer)."""
        if self._preview is not None:
            return self._preview
        signature = self._signature()
        runs = await self._store.list_runs(newest_first=True, limit=_PREVIEW_RUNS + 1)
        if len(runs) <= _PREVIEW_RUNS:
            self._snapshot = _RunsSnapshot(_by_update(runs), signature)
            return self._snapshot
        self._preview = _RunsSnapshot(_by_update(runs[:_PREVIEW_RUNS]), signature,
                                      partial=True)
        self._start()
        return self._preview

    def _start(self) -> asyncio.Task[_RunsSnapshot]:
        if self._loading is None or self._loading.done():
            self._loading = asyncio.get_running_loop().create_task(self._load())
        return self._loading

    async def snapshot(self, *, whole: bool = True) -> _RunsSnapshot:
        """The list to serve; ``whole=False`` accepts the newest runs while it loads."""
        snap = self._snapshot
        if snap is None:
            if not whole:
                return await self._first()
            return await asyncio.shield(self._start())
        if time.monotonic() - snap.monotonic > self._max_age and (
                snap.signature is None or snap.signature != self._signature()):
            self._start()
        return snap

    def prefetch(self) -> None:
        self._start()

    @property
    def loading(self) -> bool:
        return self._loading is not None and not self._loading.done()

    async def settle(self) -> None:
        """Return once a read of the list in progress (if any) has finished."""
        if self._loading is not None:
            await asyncio.shield(self._loading)

    async def close(self) -> None:
        task = self._loading
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, MfmError):
                await task

    async def page(self, *, status: str | None, op: str | None, prefix: str | None,
                   offset: int, size: int = RUNS_PAGE_SIZE) -> RunsPage:
        snap = await self.snapshot(whole=bool(prefix or status or op)
                                   or offset + size > _PREVIEW_RUNS)
        runs = snap.runs
        if prefix:
            runs = [r for r, i in zip(runs, snap.ids, strict=True) if i.startswith(prefix)]
        if status or op:
            runs = [r for r in runs
                    if (not status or r.status == status) and (not op or r.op_id == op)]
        offset = max(0, min(offset, max(len(runs) - 1, 0)))
        return RunsPage(runs=runs[offset:offset + size], total=len(runs),
                        all_runs=len(snap.runs), offset=offset, ops=snap.ops,
                        statuses=snap.statuses, loaded_at=snap.loaded_at,
                        partial=snap.partial)

    def summary(self, run_id: str) -> RunSummary | None:
        """The run's row if the list is loaded (times for the run page)."""
        return None if self._snapshot is None else self._snapshot.by_id.get(run_id)


@attrs.frozen(kw_only=True)
class RunView:
    """A run as far as it was read: ``complete`` once every event up to ``head`` is in."""

    model: RunModel
    head: int
    complete: bool
    status: str


def _chunk(model: RunModel, attempts: int) -> int:
    """Events to read next: enough for the attempts still missing at the rate seen so far."""
    if not model.attempts:
        return _FIRST_CHUNK
    per_attempt = model.head_seq / len(model.attempts)
    missing = attempts + 1 - len(model.attempts)
    return max(_FIRST_CHUNK, min(int(missing * per_attempt * 1.25) + 1, _MAX_CHUNK))


class _RunEntry:
    def __init__(self, builder: RunBuilder) -> None:
        self.builder = builder
        self.lock = asyncio.Lock()


@attrs.frozen(kw_only=True)
class ArtifactView:
    """An artifact decoded for display: JSON if its bytes are UTF-8 JSON, else bytes."""

    artifact_id: str
    size: int
    json_value: Any = None
    is_json: bool = False
    head: bytes = b""


def decode_artifact(artifact_id: str, data: bytes) -> ArtifactView:
    if len(data) <= JSON_PREVIEW_LIMIT:
        try:
            value = json.loads(data.decode("utf-8"))
        except ValueError:
            pass
        else:
            return ArtifactView(artifact_id=artifact_id, size=len(data), json_value=value,
                                is_json=True, head=data[:4096])
    return ArtifactView(artifact_id=artifact_id, size=len(data), head=data[:4096])


class _ArtifactCache:
    """Artifact bytes by id, least recently used out first. Content-addressed, so a cached
    entry is never stale."""

    def __init__(self, budget: int = _CACHE_BYTES) -> None:
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._bytes = 0
        self._budget = budget

    def get(self, key: str) -> bytes | None:
        data = self._items.get(key)
        if data is not None:
            self._items.move_to_end(key)
        return data

    def put(self, key: str, data: bytes) -> None:
        if len(data) > _CACHE_ITEM or key in self._items:
            return
        self._items[key] = data
        self._bytes += len(data)
        while self._bytes > self._budget:
            _, old = self._items.popitem(last=False)
            self._bytes -= len(old)


class VerifyJob:
    """One ``verify()`` at a time, in the background, with its progress for the page."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.state = "idle"  # idle, running, done, error, unsupported
        self.done_units = 0
        self.total_units: int | None = None
        self.report: Any = None
        self.error: str | None = None
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self._task: asyncio.Task[None] | None = None

    def _progress(self, phase: str, n: int, total: int | None) -> None:
        self.total_units = total
        self.done_units += n

    def start(self) -> None:
        """Start a check unless one is running."""
        verify: Callable[..., Any] | None = getattr(self._store, "verify", None)
        if verify is None:
            self.state = "unsupported"
            return
        if self.state == "running":
            return
        self.state, self.done_units, self.total_units = "running", 0, None
        self.report, self.error = None, None
        self.started_at, self.finished_at = time.time(), None
        takes_progress = "progress" in inspect.signature(verify).parameters

        async def job() -> None:
            try:
                kwargs = {"progress": self._progress} if takes_progress else {}
                self.report = await verify(**kwargs)
                self.state = "done"
            except MfmError as exc:
                self.error, self.state = f"{exc} [{exc.info.code}]", "error"
            finally:
                self.finished_at = time.time()

        self._task = asyncio.get_running_loop().create_task(job())

    async def wait(self) -> None:
        """Return once the current check (if any) has finished."""
        if self._task is not None:
            await asyncio.shield(self._task)

    def to_json(self) -> dict[str, Any]:
        return {"state": self.state, "done": self.done_units, "total": self.total_units}

    async def close(self) -> None:
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


class Inspector:
    """Everything the pages read, over one open store (which the caller owns and closes)."""

    def __init__(self, store: Store, label: str, runs_max_age: float = _INDEX_MAX_AGE) -> None:
        self.store = store
        self.label = label
        self.runs = _RunsIndex(store, runs_max_age)
        self.verify = VerifyJob(store)
        self._artifacts = _ArtifactCache()
        self._runs: OrderedDict[str, _RunEntry] = OrderedDict()
        self._policies: dict[str, RetryPolicy | None] = {}

    async def artifact(self, artifact_id: ArtifactId) -> bytes:
        data = self._artifacts.get(artifact_id)
        if data is None:
            data = await self.store.get(artifact_id)
            self._artifacts.put(artifact_id, data)
        return data

    async def json_artifact(self, artifact_id: str | None) -> Any:
        """The decoded JSON of an artifact; ``None`` if absent, unreadable or not JSON."""
        if artifact_id is None:
            return None
        try:
            return json.loads((await self.artifact(ArtifactId(artifact_id))).decode("utf-8"))
        except (MfmError, ValueError):
            return None

    async def policy(self, manifest_id: str | None) -> RetryPolicy | None:
        """The retry policy of a manifest, if it is an engine manifest."""
        if manifest_id is None:
            return None
        if manifest_id not in self._policies:
            manifest = await self.json_artifact(manifest_id)
            try:
                policy: RetryPolicy | None = RetryPolicy.from_json(
                    manifest["run_config"]["retry_policy"])
            except (KeyError, TypeError, ValueError):
                policy = None
            self._policies[manifest_id] = policy
        return self._policies[manifest_id]

    async def run_view(self, run_id: RunId, attempts: int) -> RunView | None:
        """The run read far enough to hold ``attempts`` closed attempts (or all of it).

        Events are read from where the cached builder stopped, in pages, so the first page
        of a long run costs a few hundred events, not the whole run; a run that grew is
        extended, never rebuilt. ``None`` for an unknown run.
        """
        key = str(run_id)
        head = await self.store.head_seq(run_id)
        if head == 0:
            return None
        entry = self._runs.get(key)
        if entry is None:
            entry = self._runs[key] = _RunEntry(RunBuilder(key))
        self._runs.move_to_end(key)
        while len(self._runs) > _RUN_CACHE:
            self._runs.popitem(last=False)
        async with entry.lock:
            model = entry.builder.model
            # One attempt more than asked: the last one shown is then known to be closed.
            while model.head_seq < head and len(model.attempts) <= attempts:
                start = model.head_seq + 1
                for env in await self.store.read_range(
                        run_id, start, min(start + _chunk(model, attempts) - 1, head)):
                    entry.builder.feed(env)
                if model.head_seq < start:  # nothing more to read after all
                    break
            status = model.status
            if model.head_seq < head:
                # The run's status is decided by its last event (RunCompleted).
                last = await self.store.read_range(run_id, head, head)
                if last and isinstance(last[0].event, RunCompleted):
                    status = last[0].event.status.value.lower()
            return RunView(model=model, head=head, complete=model.head_seq >= head,
                           status=status)

    async def close(self) -> None:
        await self.runs.close()
        await self.verify.close()
