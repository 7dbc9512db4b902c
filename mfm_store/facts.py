"""Fact bindings seen from the IO layer (SPEC §6): the in-memory index and the recorders.

A *fact* binds a key to a payload artifact, once per run (first writer wins). The durable
binding lives in the store (:meth:`FactStore.bind_fact`); :class:`FactIndex` is the in-memory
view one process works from, and a :class:`FactRecorder` is how a new binding is made durable.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Protocol, runtime_checkable

from . import _rules
from ._io_common import check_fact_key, io_error
from .errors import CODE_FACT_BINDING_APPEND_FAILED, ErrorCategory, IoError, StorageError
from .events import DomainEvent, EventEnvelope
from .ids import ArtifactId, FactKey, RunId
from .stores import FactBinding, FactStore

__all__ = [
    "FactIndex",
    "FactRecorder",
    "NoopFactRecorder",
    "PayloadFactRecorder",
    "StoreFactRecorder",
]


class _Exclusive:
    """Holds one key of a :class:`FactIndex` (see :meth:`FactIndex.exclusive`)."""

    __slots__ = ("_guards", "_key")

    def __init__(self, guards: dict[FactKey, list[asyncio.Future[None]]], key: FactKey) -> None:
        self._guards, self._key = guards, key

    async def __aenter__(self) -> None:
        waiters = self._guards.get(self._key)
        if waiters is None:
            self._guards[self._key] = []  # held, nobody waiting
            return
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiters.append(turn)
        try:
            await turn
        except BaseException:
            if turn.done() and not turn.cancelled():
                self._release()  # the key was handed to us as we were cancelled: pass it on
            elif turn in waiters:
                waiters.remove(turn)
            raise

    async def __aexit__(self, *exc: object) -> None:
        self._release()

    def _release(self) -> None:
        waiters = self._guards[self._key]
        while waiters:
            turn = waiters.pop(0)
            if not turn.done():
                turn.set_result(None)  # the next holder; the key stays held
                return
        del self._guards[self._key]


class FactIndex:
    """Fact key → payload id for one run, shared by every IO object working on that run.

    Each operation is atomic with respect to other tasks (none waits inside). The index is not
    durable and does not write anywhere: it only mirrors bindings that a :class:`FactRecorder`
    made (or is making) durable, or that were loaded from a store or an event stream.
    """

    def __init__(self, bindings: Mapping[FactKey, ArtifactId] | None = None) -> None:
        self._bindings: dict[FactKey, ArtifactId] = {
            k: ArtifactId(v) for k, v in (bindings or {}).items()
        }
        # Held keys: the tasks waiting for each, in arrival order.
        self._guards: dict[FactKey, list[asyncio.Future[None]]] = {}

    @classmethod
    def from_event_stream(cls, envelopes: Iterable[EventEnvelope]) -> FactIndex:
        """Index the ``fact_recorded`` events of a stream; the first binding of a key wins.

        As in mfm-machine 0.1.0, an event whose payload is not ``{"key": str, "payload_id": id,
        "meta": any, ...}`` is skipped silently (``meta`` must be present; ``payload_id`` must
        also be a valid artifact id here), and so is every other event.
        """
        bindings: dict[FactKey, ArtifactId] = {}
        for env in envelopes:
            event = env.event
            binding = _rules.fact_binding_of(event)
            if binding is None or not isinstance(event, DomainEvent) or "meta" not in event.payload:
                continue
            key, payload_id = binding
            bindings.setdefault(key, payload_id)
        return cls(bindings)

    @classmethod
    async def from_store(cls, store: FactStore, run_id: RunId) -> FactIndex:
        """Load the run's durable bindings from the store's binding table (no event scan)."""
        return cls(await store.facts(run_id))

    async def get(self, key: FactKey) -> ArtifactId | None:
        return self._bindings.get(key)

    async def bind_if_unset(self, key: FactKey, payload_id: ArtifactId) -> tuple[ArtifactId, bool]:
        """Bind ``key`` unless bound; returns ``(effective_id, inserted)``."""
        current = self._bindings.get(key)
        if current is not None:
            return current, False
        payload_id = ArtifactId(payload_id)
        self._bindings[key] = payload_id
        return payload_id, True

    async def unbind_if_matches(self, key: FactKey, payload_id: ArtifactId) -> bool:
        """Remove the binding only if it is still ``payload_id``; True if removed."""
        if self._bindings.get(key) != payload_id:
            return False
        del self._bindings[key]
        return True

    async def snapshot(self) -> dict[FactKey, ArtifactId]:
        """A copy of every binding."""
        return dict(self._bindings)

    def exclusive(self, key: FactKey) -> AbstractAsyncContextManager[None]:
        """``async with index.exclusive(key):`` one task at a time per key, in arrival order.

        ``LiveIo`` holds it from its lookup until the durable binding has settled, so a task
        sharing the index waits for that outcome instead of serving a binding that may still
        be rolled back or replaced by another process's winner. Not reentrant.
        """
        return _Exclusive(self._guards, key)


@runtime_checkable
class FactRecorder(Protocol):
    """Makes a new fact binding durable. Bindings are durable whatever the event profile."""

    async def record_fact_binding(self, key: FactKey, payload_id: ArtifactId, *,
                                  refs: Sequence[ArtifactId] = ()
                                  ) -> FactBinding | ArtifactId | None:
        """Record ``key → payload_id``; raise (any ``MfmError``) if it could not be recorded.

        ``refs``: other artifacts the payload depends on (see ``FactStore.bind_fact``), to be
        recorded with the binding. ``LiveIo`` passes it only when a transport declared some
        (:class:`~mfm_store.live_io.IoAnswer`), so a recorder without the keyword keeps
        working for every other fact.

        Returns ``None`` when the binding is recorded as asked, or the durable binding (a
        :class:`FactBinding`, or just its payload id); if that payload id differs from
        ``payload_id``, another writer bound the key first and its payload is the answer
        (``LiveIo`` then serves the winner's value).
        """
        ...


@runtime_checkable
class PayloadFactRecorder(FactRecorder, Protocol):
    """A recorder that also stores the payload, in the same durable write as the binding.

    ``LiveIo`` uses it when ``payload_store`` is its own artifact store: a new fact then costs
    one commit (artifact, binding and event together) instead of a ``put`` and a binding.
    """

    @property
    def payload_store(self) -> object:
        """The artifact store the payloads go to (compared by identity)."""
        ...

    async def record_fact_payload(self, key: FactKey, payload_id: ArtifactId, data: bytes, *,
                                  refs: Sequence[ArtifactId] = ()
                                  ) -> FactBinding | ArtifactId | None:
        """Store ``data`` (whose id is ``payload_id``) and record ``key → payload_id``;
        same ``refs``, answers and errors as :meth:`FactRecorder.record_fact_binding`."""
        ...


class NoopFactRecorder:
    """Records nothing (tests, or IO whose facts need not outlive the process)."""

    async def record_fact_binding(self, key: FactKey, payload_id: ArtifactId, *,
                                  refs: Sequence[ArtifactId] = ()) -> None:
        return None


class StoreFactRecorder:
    """Records bindings with :meth:`FactStore.bind_fact` for one run.

    ``bind_fact`` appends the ``fact_recorded`` event at the run's head + 1 in the same
    transaction as the binding and is durable on return. The store's answer is returned as is:
    ``inserted=False`` with another ``payload_id`` means another writer (task, process) was first.

    ``on_bound`` is called with every answer of ``bind_fact`` (after it returned, before this
    method returns), and ``last_binding`` keeps the latest one: an engine that also appends
    events uses them to learn that the head moved to ``binding.seq`` when ``inserted`` is true.
    If ``on_bound`` raises, the error propagates as a recording failure while the durable
    binding stays; the next attempt finds it in the store.

    Raises ``IoError`` code ``secrets_detected`` if the key names a secret (nothing written),
    or ``IoError`` code ``fact_binding_append_failed`` (the store's error as ``__cause__``) if
    the store failed.
    """

    def __init__(self, store: FactStore, run_id: RunId, *,
                 on_bound: Callable[[FactBinding], None] | None = None) -> None:
        self.store = store
        self.run_id = run_id
        self.last_binding: FactBinding | None = None
        self._on_bound = on_bound

    @property
    def payload_store(self) -> object:
        return self.store

    async def record_fact_binding(self, key: FactKey, payload_id: ArtifactId, *,
                                  refs: Sequence[ArtifactId] = ()) -> FactBinding:
        """Bind ``key → payload_id`` (with the declared ``refs``, which must exist)."""
        key = check_fact_key(key)
        if refs:
            return await self._settle(self.store.bind_fact(self.run_id, key, payload_id,
                                                           refs=refs))
        return await self._settle(self.store.bind_fact(self.run_id, key, payload_id))

    async def record_fact_payload(self, key: FactKey, payload_id: ArtifactId, data: bytes, *,
                                  refs: Sequence[ArtifactId] = ()) -> FactBinding:
        """Like :meth:`record_fact_binding`, storing ``data`` in the same write."""
        key = check_fact_key(key)
        try:
            binding = await (self.store.record_fact(self.run_id, key, data, refs=refs) if refs
                             else self.store.record_fact(self.run_id, key, data))
        except StorageError as exc:
            raise _append_failed() from exc
        self.last_binding = binding
        if self._on_bound is not None:
            self._on_bound(binding)
        return binding

    async def _settle(self, write: Awaitable[FactBinding]) -> FactBinding:
        try:
            binding = await write
        except StorageError as exc:
            raise _append_failed() from exc
        self.last_binding = binding
        if self._on_bound is not None:
            self._on_bound(binding)
        return binding


def _append_failed() -> IoError:
    return io_error(CODE_FACT_BINDING_APPEND_FAILED, ErrorCategory.STORAGE,
                    "failed to append fact binding event")
