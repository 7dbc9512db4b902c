"""Wiring the IO layer into an attempt: transports, LiveIo / ReplayIo, missing-fact tracking."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeAlias

from ..errors import MissingFactError
from ..facts import FactIndex
from ..ids import ArtifactId, FactKey, RunId, StateId
from ..live_io import (
    IoCall,
    IoProvider,
    IoResult,
    LiveIo,
    LiveIoEnv,
    LiveIoTransportFactory,
    RouterLiveIoTransportFactory,
    UnimplementedLiveIoTransportFactory,
)
from ..replay_io import ReplayIo
from ..stores import ArtifactStore, Store
from .manifest import IoMode
from .recorder import EngineFactRecorder
from .writer import RunWriter

TransportsArg: TypeAlias = LiveIoTransportFactory | Iterable[LiveIoTransportFactory] | None


def resolve_transports(transports: TransportsArg) -> LiveIoTransportFactory:
    """One factory as is, several behind a namespace router, none: ``io_unimplemented``."""
    if transports is None:
        return UnimplementedLiveIoTransportFactory()
    if isinstance(transports, LiveIoTransportFactory):
        return transports
    return RouterLiveIoTransportFactory(list(transports))


class ObservedIo:
    """Forwards to the attempt's IO provider and notes the keys of missing facts, so that a
    replay can name the fact it lacked even if the handler replaced the error by its own."""

    def __init__(self, inner: IoProvider, missing: list[FactKey]) -> None:
        self._inner = inner
        self._missing = missing

    @property
    def artifacts(self) -> ArtifactStore | None:
        """The artifact store the wrapped provider reads its facts from (``None`` if it has
        no such attribute)."""
        return getattr(self._inner, "artifacts", None)

    def _note(self, exc: MissingFactError) -> None:
        self._missing.append(exc.key)

    async def call(self, call: IoCall) -> IoResult:
        try:
            return await self._inner.call(call)
        except MissingFactError as exc:
            self._note(exc)
            raise

    async def record_value(self, key: FactKey, value: object) -> ArtifactId:
        try:
            return await self._inner.record_value(key, value)
        except MissingFactError as exc:
            self._note(exc)
            raise

    async def get_recorded_fact(self, key: FactKey) -> ArtifactId | None:
        return await self._inner.get_recorded_fact(key)

    async def now_millis(self) -> int:
        try:
            return await self._inner.now_millis()
        except MissingFactError as exc:
            self._note(exc)
            raise

    async def random_bytes(self, n: int) -> bytes:
        try:
            return await self._inner.random_bytes(n)
        except MissingFactError as exc:
            self._note(exc)
            raise


def build_io(store: Store, run_id: RunId, state_id: StateId, attempt: int, *,
             facts: FactIndex, io_mode: IoMode, writer: RunWriter,
             transports: LiveIoTransportFactory, replay_missing_fact_retryable: bool,
             missing_facts: list[FactKey]) -> IoProvider:
    """The IO provider of one attempt. Live: a fresh transport from the factory (``make`` is
    called once per live attempt) and facts bound through the run's writer. Replay: recorded
    facts only, no transport built. Missing facts' keys are appended to ``missing_facts``."""
    inner: IoProvider
    if io_mode is IoMode.REPLAY:
        inner = ReplayIo(run_id, state_id, attempt, store, facts, replay_missing_fact_retryable)
    else:
        env = LiveIoEnv(store, run_id, state_id, attempt)
        inner = LiveIo(run_id, state_id, attempt, store, facts, EngineFactRecorder(writer),
                       transports.make(env))
    return ObservedIo(inner, missing_facts)
