"""Following a store: committed events as they land (``store.follow``), from any process.

A :class:`Follower` is an async iterator of :class:`~mfm_store.events.EventEnvelope` with a
:attr:`Follower.cursor` naming the last event it delivered; a follower created with
``after=cursor`` delivers exactly the events after it, so a follower that restarts (with the
cursor persisted as :meth:`FollowCursor.to_text`) misses nothing and repeats nothing.

Cursors: following one run, the position is the run's seq. Following every run, it is the
backend's global position: the SQLite file's event row id (commit order: see README,
"Following runs"), the memory store's append count, or on PostgreSQL a map of each run's seq
(no global order exists there that a reader could resume from without a gap).

Backends supply a :class:`Source` (how to read what is past a cursor) and a :class:`Hub` (one
per open store: wakes every follower when something may have changed, and ends them all when
the store closes).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any, Literal, Protocol

import attrs

from .errors import CODE_INVALID_ARGUMENT, StorageError
from .events import EventEnvelope
from .ids import RunId
from .stores import Store

__all__ = ["After", "FollowCursor", "Follower", "Hub", "Source", "StoreSource"]

_PAGE = 500


@attrs.frozen(hash=False)
class FollowCursor:
    """Where a follower stands: after ``position`` (a seq of ``run_id``, or the backend's global
    position when ``run_id`` is None), or after each run's seq in ``seqs`` (PostgreSQL, every
    run). Persist it with :meth:`to_text`, read it back with :meth:`parse`."""

    run_id: str | None = None
    position: int = 0
    seqs: Mapping[str, int] | None = None

    def to_text(self) -> str:
        obj: dict[str, Any] = {"run_id": self.run_id, "position": self.position}
        if self.seqs is not None:
            obj["seqs"] = dict(sorted(self.seqs.items()))
        return json.dumps(obj, separators=(",", ":"))

    @classmethod
    def parse(cls, text: str) -> FollowCursor:
        """Inverse of :meth:`to_text`; ``StorageError`` (``invalid_argument``) if malformed."""
        try:
            obj = json.loads(text)
            run_id = obj["run_id"]
            position = obj["position"]
            seqs = obj.get("seqs")
            if (run_id is None or isinstance(run_id, str)) and type(position) is int \
                    and position >= 0 and (seqs is None or (
                        isinstance(seqs, dict) and all(type(v) is int and v >= 0
                                                       for v in seqs.values()))):
                return cls(None if run_id is None else str(RunId.parse(run_id)), position,
                           None if seqs is None else {str(RunId.parse(k)): v
                                                      for k, v in seqs.items()})
        except (ValueError, TypeError, KeyError, AttributeError):
            pass
        raise StorageError(f"not a follow cursor: {text[:80]!r}", code=CODE_INVALID_ARGUMENT)


After = FollowCursor | int | Literal["end"] | None
"""``follow(after=...)``: a cursor, a seq (one run) or global position (every run), ``"end"``
(only what commits after ``async with follower`` or, without it, after the first
``__anext__`` began) or None (from the beginning)."""

Batch = list[tuple[EventEnvelope, FollowCursor]]


class Source(Protocol):
    """What a follower reads: the events past a cursor, each with the cursor after it."""

    async def fetch(self, cursor: FollowCursor, limit: int) -> Batch: ...

    async def end(self, run_id: str | None) -> FollowCursor: ...


class Hub:
    """One per open store: wakes followers, ends them when the store closes.

    ``detect`` (optional) is polled while followers wait, at an interval growing from
    ``min_interval`` to ``max_interval`` while nothing changes; it returns whether the store
    changed. Without it, followers poll their source at that adaptive interval themselves
    unless ``notify_only`` (every change comes through :meth:`notify`).
    """

    def __init__(self, detect: Callable[[], Awaitable[bool]] | None = None, *,
                 min_interval: float = 0.002, max_interval: float = 0.1,
                 notify_only: bool = False) -> None:
        self._detect = detect
        self.min_interval, self.max_interval = min_interval, max_interval
        self.notify_only = notify_only
        self._waiters: set[asyncio.Event] = set()
        self._watcher: asyncio.Task[None] | None = None
        self._poke = asyncio.Event()
        self.closed = False

    @property
    def polls_itself(self) -> bool:
        return self._detect is not None or self.notify_only

    def notify(self) -> None:
        """Something may have been committed: every waiting follower looks."""
        for ev in self._waiters:
            ev.set()
        self._poke.set()

    def register(self, ev: asyncio.Event) -> None:
        self._waiters.add(ev)
        if self._detect is not None and (self._watcher is None or self._watcher.done()):
            self._watcher = asyncio.get_running_loop().create_task(self._watch())

    def unregister(self, ev: asyncio.Event) -> None:
        self._waiters.discard(ev)

    async def _watch(self) -> None:
        assert self._detect is not None
        interval = self.min_interval
        while self._waiters and not self.closed:
            self._poke.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._poke.wait(), interval)
            if self._poke.is_set():  # an in-process commit: followers were woken already
                interval = self.min_interval
                continue
            try:
                changed = await self._detect()
            except Exception:
                changed = True  # the followers' own reads report what is wrong
            if changed:
                interval = self.min_interval
                for ev in self._waiters:
                    ev.set()
            else:
                interval = min(interval * 1.5, self.max_interval)

    async def close(self) -> None:
        """End every follower (promptly: they are waiting or will look before reading)."""
        self.closed = True
        self.notify()
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(BaseException):
                await self._watcher


class Follower:
    """``async for env in follower``; :attr:`cursor` is after the last event delivered.

    Ends (``StopAsyncIteration``) after :meth:`aclose` or when the store closes; also an async
    context manager that closes it.
    """

    def __init__(self, source: Source, hub: Hub, cursor: FollowCursor | None,
                 start_at_end: bool = False) -> None:
        self._source, self._hub = source, hub
        self._cursor = cursor if cursor is not None else FollowCursor()
        self._start_at_end = start_at_end
        self._buffer: deque[tuple[EventEnvelope, FollowCursor]] = deque()
        self._wake = asyncio.Event()
        self._closed = False
        hub.register(self._wake)

    @property
    def cursor(self) -> FollowCursor:
        return self._cursor

    def __aiter__(self) -> Follower:
        return self

    async def __anext__(self) -> EventEnvelope:
        if self._buffer:
            env, self._cursor = self._buffer.popleft()
            return env
        idle = self._hub.min_interval
        while True:
            if self._closed or self._hub.closed:
                self._finish()
                raise StopAsyncIteration
            self._wake.clear()
            try:
                if self._start_at_end:
                    self._cursor = await self._source.end(self._cursor.run_id)
                    self._start_at_end = False
                batch = await self._source.fetch(self._cursor, _PAGE)
            except Exception:
                if self._closed or self._hub.closed:
                    continue  # the store closed under the read: end quietly
                raise
            if batch:
                self._buffer.extend(batch)
                env, self._cursor = self._buffer.popleft()
                return env
            if self._hub.polls_itself:
                await self._wake.wait()
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), idle)
                idle = min(idle * 1.5, self._hub.max_interval)

    def _finish(self) -> None:
        self._closed = True
        self._buffer.clear()
        self._hub.unregister(self._wake)

    async def aclose(self) -> None:
        """End the iteration (a task waiting in ``__anext__`` gets ``StopAsyncIteration``)."""
        self._closed = True
        self._wake.set()
        self._hub.unregister(self._wake)

    async def __aenter__(self) -> Follower:
        """Resolves ``after="end"`` now: what commits after ``async with`` is delivered."""
        if self._start_at_end:
            self._cursor = await self._source.end(self._cursor.run_id)
            self._start_at_end = False
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()


def start_cursor(run_id: RunId | str | None, after: After, *, global_kind: str
                 ) -> tuple[FollowCursor, bool]:
    """The first cursor for ``follow(run_id, after=after)`` and whether to start at the end.

    ``global_kind`` is ``"position"`` or ``"seqs"`` (the backend's form for every run).
    """
    rid = None if run_id is None else str(RunId.parse(str(run_id)))
    if after is None:
        return FollowCursor(rid, 0, None if rid is not None or global_kind == "position"
                            else {}), False
    if after == "end":
        return FollowCursor(rid), True
    if type(after) is int:
        if after < 0 or (rid is None and global_kind != "position"):
            raise StorageError(f"after={after!r}: this store follows every run with a cursor "
                               "(FollowCursor), not a position" if after >= 0 else
                               f"after must be at least 0, not {after}",
                               code=CODE_INVALID_ARGUMENT)
        return FollowCursor(rid, after), False
    if isinstance(after, FollowCursor):
        if after.run_id != rid:
            raise StorageError(f"the cursor follows {after.run_id or 'every run'}, not "
                               f"{rid or 'every run'}", code=CODE_INVALID_ARGUMENT)
        if rid is None and (after.seqs is None) != (global_kind == "position"):
            raise StorageError("the cursor was made by another kind of store",
                               code=CODE_INVALID_ARGUMENT)
        return after, False
    raise StorageError(f"after must be a FollowCursor, an int, 'end' or None, not {after!r}",
                       code=CODE_INVALID_ARGUMENT)


class StoreSource:
    """A source reading through the public store API: one run by seq, every run by polling
    ``list_runs`` heads (cursor: each run's seq). For backends without a global order."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def end(self, run_id: str | None) -> FollowCursor:
        if run_id is not None:
            return FollowCursor(run_id, await self._store.head_seq(RunId.parse(run_id)))
        return FollowCursor(None, 0, {str(r.run_id): r.head_seq
                                      for r in await self._store.list_runs()})

    async def fetch(self, cursor: FollowCursor, limit: int) -> Batch:
        if cursor.run_id is not None:
            run_id = RunId.parse(cursor.run_id)
            envs = await self._store.read_range(run_id, cursor.position + 1,
                                                cursor.position + limit)
            return [(env, FollowCursor(cursor.run_id, env.seq)) for env in envs]
        seqs = dict(cursor.seqs or {})
        out: Batch = []
        runs = await self._store.list_runs()
        live = {str(r.run_id) for r in runs}
        for gone in [rid for rid in seqs if rid not in live]:  # pruned
            del seqs[gone]
        for r in sorted(runs, key=lambda r: r.updated_millis):
            rid = str(r.run_id)
            if r.head_seq <= seqs.get(rid, 0):
                continue
            start = seqs.get(rid, 0) + 1
            for env in await self._store.read_range(r.run_id, start,
                                                    start + limit - len(out) - 1):
                seqs[rid] = env.seq
                out.append((env, FollowCursor(None, 0, dict(seqs))))
            if len(out) >= limit:
                break
        return out

