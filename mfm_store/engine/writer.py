"""The per-run event writer: the only path by which the engine appends to a run's stream.

It tracks the run's head so that every append is optimistic (``expected_seq`` = the head it
believes in). ``bind_fact`` appends its ``fact_recorded`` event at the store's head + 1 by
itself, so the writer learns the head back from ``FactBinding.seq``. If any other writer (a
second process resuming the same run) moves the head, the next write of this one fails with
``ConcurrencyError`` and writes nothing: a stale writer can never interleave its events with the
new owner's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from ..events import Event, EventEnvelope
from ..ids import ArtifactId, FactKey, RunId
from ..stores import FactBinding, Store

__all__ = ["RunWriter"]

T = TypeVar("T")


class RunWriter:
    """Appends events for one run, in order, from one process.

    Appends and fact bindings are serialised by one lock so that a binding's seq can be checked
    against the head (concurrent IO calls inside a state stay correct).
    """

    def __init__(self, store: Store, run_id: RunId, head: int) -> None:
        self._store = store
        self._run_id = run_id
        self._head = head
        self._lock = asyncio.Lock()

    @property
    def run_id(self) -> RunId:
        return self._run_id

    @property
    def head(self) -> int:
        """The last seq this writer wrote or observed."""
        return self._head

    async def append(self, events: Sequence[Event]) -> int:
        """Append ``events`` atomically after the head; returns the new head.

        Raises ``ConcurrencyError`` (nothing written) if another writer moved the head.
        An empty sequence writes nothing.
        """
        if not events:
            return self._head
        async with self._lock:
            envelopes = [EventEnvelope(self._run_id, self._head + i, None, e)
                         for i, e in enumerate(events, start=1)]
            return await self._settle(self._store.append(self._run_id, self._head, envelopes),
                                      lambda head: head)

    @property
    def store(self) -> Store:
        return self._store

    async def record_fact(self, key: FactKey, data: bytes,
                          refs: Sequence[ArtifactId] = ()) -> FactBinding:
        """Like :meth:`bind_fact`, storing the payload ``data`` in the same write."""
        async with self._lock:
            write = (self._store.record_fact(self._run_id, key, data, expected_seq=self._head,
                                             refs=refs) if refs else
                     self._store.record_fact(self._run_id, key, data, expected_seq=self._head))
            return await self._settle(write, _head_after)

    async def bind_fact(self, key: FactKey, payload_id: ArtifactId,
                        refs: Sequence[ArtifactId] = ()) -> FactBinding:
        """Bind a fact through the store (first writer wins) and learn the head back.

        The store binds only while the run's head is still this writer's (``expected_seq``),
        so a stale writer gets ``ConcurrencyError`` and adds no fact after the new owner's
        events. A key another writer already bound is returned as is (nothing written).
        """
        async with self._lock:
            write = (self._store.bind_fact(self._run_id, key, payload_id,
                                           expected_seq=self._head, refs=refs) if refs else
                     self._store.bind_fact(self._run_id, key, payload_id,
                                           expected_seq=self._head))
            return await self._settle(write, _head_after)

    async def _settle(self, write: Awaitable[T], new_head: Callable[[T], int | None]) -> T:
        """Await ``write`` and learn the head it leaves.

        If the caller is cancelled meanwhile, the commit may already be under way (on the
        store's thread): wait for its outcome so that this writer's head stays true, then let
        the cancellation through.
        """
        task = asyncio.ensure_future(write)
        try:
            result = await asyncio.shield(task)
        except asyncio.CancelledError:
            await asyncio.wait([task])
            if not task.cancelled() and task.exception() is None:
                self._learn(new_head(task.result()))
            raise
        self._learn(new_head(result))
        return result

    def _learn(self, head: int | None) -> None:
        if head is not None:
            self._head = head


def _head_after(binding: FactBinding) -> int | None:
    return binding.seq if binding.inserted else None
