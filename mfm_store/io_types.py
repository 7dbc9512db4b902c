"""The IO layer's value types and protocols (SPEC §6): what a state handler asks
(:class:`IoCall`), what it gets back (:class:`IoResult`), what it asks through
(:class:`IoProvider`) and what talks to the outside world (:class:`LiveIoTransport`, built
per attempt by a :class:`LiveIoTransportFactory` from a :class:`LiveIoEnv`).

Shared by ``LiveIo`` (``mfm_store.live_io``) and ``ReplayIo`` (``mfm_store.replay_io``), which
import them from here; ``mfm_store.live_io`` re-exports them under their old path.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol, runtime_checkable

import attrs

from ._io_common import JsonValue, check_attempt
from .ids import ArtifactId, FactKey, RunId, StateId
from .stores import Store

__all__ = [
    "IoAnswer",
    "IoCall",
    "IoProvider",
    "IoResult",
    "LiveIoEnv",
    "LiveIoTransport",
    "LiveIoTransportFactory",
]


def _artifact_tuple(refs: Iterable[Any]) -> tuple[ArtifactId, ...]:
    return tuple(ArtifactId(ref) for ref in refs)


def _opt_artifact(value: Any) -> ArtifactId | None:
    return None if value is None else ArtifactId(value)


@attrs.frozen
class IoCall:
    """One request to the outside world.

    ``namespace`` routes it to a transport; ``fact_key``, when given, records the answer as a
    fact so that a retry, a resumed run or a replay gets the same answer without asking again.
    """

    namespace: str
    request: JsonValue
    fact_key: FactKey | None = None

    def to_json(self) -> dict[str, Any]:
        return {"namespace": self.namespace, "request": self.request, "fact_key": self.fact_key}

    @classmethod
    def from_json(cls, obj: Any) -> IoCall:
        try:
            namespace, request, key = obj["namespace"], obj["request"], obj["fact_key"]
        except (KeyError, TypeError) as exc:
            raise ValueError(f"malformed IoCall: {obj!r}") from exc
        if not isinstance(namespace, str) or not (key is None or isinstance(key, str)):
            raise ValueError(f"malformed IoCall: {obj!r}")
        return cls(namespace, request, key)


@attrs.frozen
class IoAnswer:
    """What a transport may return instead of a bare answer, to declare the artifacts the
    answer depends on (e.g. the artifact an HTTP body was stored in, named inside ``response``).

    ``LiveIo`` records ``response`` as the fact payload and passes ``refs`` to the recorder,
    which stores them with the binding (``meta.refs`` of its ``fact_recorded`` event): the
    store then refuses the fact if one is absent, and gc, export, push, fork and verify treat
    them like every other reference. The handler receives ``response`` only.
    """

    response: JsonValue
    refs: tuple[ArtifactId, ...] = attrs.field(default=(), converter=_artifact_tuple)


@attrs.frozen
class IoResult:
    """An answer, and the payload artifact it was recorded as (``None`` if not recorded)."""

    response: JsonValue
    recorded_payload_id: ArtifactId | None = attrs.field(default=None, converter=_opt_artifact)

    def to_json(self) -> dict[str, Any]:
        return {"response": self.response, "recorded_payload_id": self.recorded_payload_id}

    @classmethod
    def from_json(cls, obj: Any) -> IoResult:
        try:
            return cls(obj["response"], obj["recorded_payload_id"])
        except (KeyError, TypeError) as exc:
            raise ValueError(f"malformed IoResult: {obj!r}") from exc


@runtime_checkable
class IoProvider(Protocol):
    """What a state handler uses for every observation of the outside world.

    Implemented by :class:`LiveIo` (asks transports, records facts) and ``ReplayIo`` (serves
    recorded facts only). Time and random values are facts keyed by the run, state, attempt and
    the order of observation within the attempt.
    """

    async def call(self, call: IoCall) -> IoResult:
        """Answer ``call``; with a ``fact_key``, the recorded answer if there is one."""
        ...

    async def record_value(self, key: FactKey, value: JsonValue) -> ArtifactId:
        """Record ``value`` as the fact ``key`` (first binding wins); returns the payload id."""
        ...

    async def get_recorded_fact(self, key: FactKey) -> ArtifactId | None:
        """The payload id bound to ``key``, if any. Reads the index only, never the store."""
        ...

    async def now_millis(self) -> int:
        """Milliseconds since the Unix epoch, as a fact."""
        ...

    async def random_bytes(self, n: int) -> bytes:
        """``n`` random bytes, as a fact (stored raw)."""
        ...


@runtime_checkable
class LiveIoTransport(Protocol):
    """Talks to the outside world. Errors it raises reach the caller unchanged. It returns the
    answer, or an :class:`IoAnswer` declaring artifacts the answer refers to."""

    async def call(self, call: IoCall) -> JsonValue | IoAnswer: ...


@attrs.frozen
class LiveIoEnv:
    """What a transport factory may know about the attempt it builds a transport for."""

    stores: Store
    run_id: RunId
    state_id: StateId = attrs.field(converter=StateId)
    attempt: int = attrs.field(converter=check_attempt)

    @property
    def store(self) -> Store:
        return self.stores


@runtime_checkable
class LiveIoTransportFactory(Protocol):
    """Builds one transport per live attempt for the namespaces under ``namespace_group``."""

    @property
    def namespace_group(self) -> str: ...

    def make(self, env: LiveIoEnv) -> LiveIoTransport: ...
