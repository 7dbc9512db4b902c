"""Live IO (SPEC §6): every external observation a state makes, recorded once as a fact.

A state handler receives an :class:`IoProvider`: :class:`LiveIo` when a run executes, or
``ReplayIo`` (``mfm_store.replay_io``) when it is replayed from its facts. Transports are passed
in (:class:`LiveIoTransport`, built per attempt by a :class:`LiveIoTransportFactory`), never
looked up globally.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any, Protocol, cast, runtime_checkable

import attrs

from ._io_common import (
    KIND_NOW_MILLIS,
    KIND_RANDOM_BYTES,
    SECRETS_SUFFIX,
    DerivedKeys,
    JsonValue,
    check_attempt,
    check_byte_count,
    check_fact_key,
    decode_json,
    io_error,
    load_bytes,
    load_json,
    random_value,
    time_value,
)
from ._rules import CheckedBytes, now_millis
from .canonical import artifact_id_for_bytes, canonical_json_bytes
from .errors import (
    CODE_FACT_PAYLOAD_NOT_CANONICAL,
    CODE_FACT_PAYLOAD_PUT_FAILED,
    CODE_IO_UNIMPLEMENTED,
    CODE_IO_UNKNOWN_NAMESPACE,
    CODE_RANDOM_UNAVAILABLE,
    CODE_SECRETS_DETECTED,
    CODE_TIME_UNAVAILABLE,
    CODE_TRANSPORT_REGISTRY,
    CanonicalJsonError,
    ErrorCategory,
    ErrorInfo,
    FloatNotAllowedError,
    SecretsNotAllowedError,
    StorageError,
)
from .facts import FactIndex, FactRecorder, PayloadFactRecorder
from .ids import ArtifactId, FactKey, RunId, StateId
from .stores import ArtifactKind, ArtifactStore, FactBinding, Store

__all__ = [
    "IoAnswer",
    "IoCall",
    "IoProvider",
    "IoResult",
    "LiveIo",
    "LiveIoEnv",
    "LiveIoTransport",
    "LiveIoTransportFactory",
    "RouterLiveIoTransportFactory",
    "TransportRegistry",
    "TransportRegistryError",
    "UnimplementedLiveIoTransportFactory",
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


class _UnimplementedTransport:
    async def call(self, call: IoCall) -> JsonValue:
        raise io_error(CODE_IO_UNIMPLEMENTED, ErrorCategory.UNKNOWN,
                       "live io transport is not configured")


class UnimplementedLiveIoTransportFactory:
    """The default factory: every call fails with ``IoError`` code ``io_unimplemented``."""

    namespace_group = "unimplemented"

    def make(self, env: LiveIoEnv) -> LiveIoTransport:
        return _UnimplementedTransport()


class TransportRegistryError(ValueError):
    """A transport factory could not be registered; ``info.code`` is
    ``transport_registry_invalid``."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.info = ErrorInfo(CODE_TRANSPORT_REGISTRY, ErrorCategory.UNKNOWN, False, message)


class TransportRegistry:
    """Transport factories by namespace group (the group is compared after ``strip()``)."""

    def __init__(self, factories: Iterable[LiveIoTransportFactory] = ()) -> None:
        self._factories: dict[str, LiveIoTransportFactory] = {}
        for factory in factories:
            self.register(factory)

    def register(self, factory: LiveIoTransportFactory) -> None:
        """Raises :class:`TransportRegistryError` for an empty or already registered group."""
        group = factory.namespace_group.strip()
        if not group:
            raise TransportRegistryError("transport namespace group must not be empty")
        if group in self._factories:
            raise TransportRegistryError(f"duplicate transport namespace group: {group}")
        self._factories[group] = factory

    def resolve(self, group: str) -> LiveIoTransportFactory | None:
        """The factory registered for exactly ``group``."""
        return self._factories.get(group)

    def all(self) -> dict[str, LiveIoTransportFactory]:
        return dict(self._factories)


def _route(namespace: str, groups: Iterable[str]) -> str | None:
    """The longest group ``g`` with ``namespace == g`` or ``namespace`` under ``g + "."``."""
    best: str | None = None
    for g in groups:
        if (namespace == g or namespace.startswith(g + ".")) and (
                best is None or len(g) > len(best)):
            best = g
    return best


class _RouterTransport:
    def __init__(self, routes: dict[str, LiveIoTransport]) -> None:
        self._routes = routes

    async def call(self, call: IoCall) -> JsonValue | IoAnswer:
        group = _route(call.namespace, self._routes)
        if group is None:
            # The request is never echoed: it may carry credentials.
            raise io_error(CODE_IO_UNKNOWN_NAMESPACE, ErrorCategory.UNKNOWN,
                           "unknown io namespace")
        return await self._routes[group].call(call)


class RouterLiveIoTransportFactory:
    """Routes each call to the factory with the longest matching namespace group.

    Group ``g`` matches namespace ``ns`` iff ``ns == g`` or ``ns.startswith(g + ".")``; with
    no match the call fails with ``IoError`` code ``io_unknown_namespace``. ``make`` builds one
    transport per route for the attempt. Construction raises :class:`TransportRegistryError`
    for an empty or duplicate group.
    """

    namespace_group = "router"

    def __init__(self, factories: Iterable[LiveIoTransportFactory] = ()) -> None:
        self._registry = TransportRegistry(factories)

    @classmethod
    def from_registry(cls, registry: TransportRegistry) -> RouterLiveIoTransportFactory:
        return cls(registry.all().values())

    def make(self, env: LiveIoEnv) -> LiveIoTransport:
        return _RouterTransport({g: f.make(env) for g, f in self._registry.all().items()})


class LiveIo:
    """Executes IO for one state attempt and records what it observes as facts.

    ``call`` without a ``fact_key`` goes to the transport and is not recorded (nor checked).
    With a key: if the key is bound, the recorded answer is returned and the transport is not
    called; otherwise the transport's answer is made canonical JSON (``IoError``
    ``fact_payload_not_canonical`` for floats, ``secrets_detected`` for secrets; nothing is
    stored in either case), stored as a ``FactPayload`` artifact
    (``fact_payload_put_failed``), bound in ``facts`` and then made durable by
    ``fact_recorder`` (a :class:`PayloadFactRecorder` writing to ``artifacts`` stores payload
    and binding in one write). If the recorder fails, the in-memory binding is rolled back (the
    orphan payload artifact stays) and its error is raised unchanged, so the next call starts
    clean. If the recorder reports that another writer bound the key first, the index adopts
    the winner and the winner's value is returned. A call returns only once its answer is
    durable (as durable as the recorder makes it), and returns the recorded form of the
    answer (sorted keys, lists): what resume and replay serve.

    Tasks sharing one :class:`FactIndex` are serialised per key: a second call for a key
    waits for the first one's outcome and then reuses its fact, so the transport is asked
    once. Transport errors propagate unchanged and record nothing. A transport that returns an
    :class:`IoAnswer` has its ``response`` recorded and its ``refs`` passed to the recorder
    (only then: the path without refs is unchanged).

    Reading a recorded payload fails with ``fact_payload_get_failed`` (store error) or
    ``fact_payload_decode_failed`` (not JSON). A fact key naming a secret is refused with
    ``secrets_detected`` before the transport is called.

    ``now_millis`` and ``random_bytes`` record under
    ``mfm:{kind}|run:{run_id}|state:{state_id}|attempt:{attempt}|ord:{n}``, ``n`` counting the
    time and random observations of this LiveIo from 0 (a retry or a resumed attempt has a new
    attempt number, hence new values). Time is stored as a canonical JSON integer, random bytes
    raw. ``clock`` (ms since the epoch) and ``entropy`` (n bytes) replace the system sources;
    if they fail the call raises ``time_unavailable`` / ``random_unavailable`` without using
    an ordinal. A recorded value of the wrong shape raises ``fact_payload_invalid``.
    """

    def __init__(self, run_id: RunId, state_id: StateId | str, attempt: int,
                 artifacts: ArtifactStore, facts: FactIndex, fact_recorder: FactRecorder,
                 transport: LiveIoTransport, *, clock: Callable[[], int] | None = None,
                 entropy: Callable[[int], bytes] | None = None) -> None:
        self.run_id = run_id
        self.state_id = StateId(state_id)
        self.attempt = check_attempt(attempt)
        self._artifacts = artifacts
        self._facts = facts
        self._recorder = fact_recorder
        self._transport = transport
        self._clock = clock or now_millis
        self._entropy = entropy or os.urandom
        self._keys = DerivedKeys(run_id, self.state_id, self.attempt)
        # One write per new fact when the recorder can store payloads where we read them.
        self._fused = (isinstance(fact_recorder, PayloadFactRecorder)
                       and fact_recorder.payload_store is artifacts)

    @property
    def artifacts(self) -> ArtifactStore:
        """The artifact store facts are read from (e.g. for bodies a fact's payload names)."""
        return self._artifacts

    async def call(self, call: IoCall) -> IoResult:
        key = call.fact_key
        if key is None:
            response = await self._transport.call(call)
            if type(response) is IoAnswer:
                response = response.response
            return IoResult(response, None)
        check_fact_key(key)
        async with self._facts._exclusive(key):
            bound = await self._facts.get(key)
            if bound is not None:
                return IoResult(await load_json(self._artifacts, bound), bound)
            response = await self._transport.call(call)
            if type(response) is IoAnswer:
                value, payload_id = await self._record_json(key, response.response,
                                                            response.refs)
            else:
                value, payload_id = await self._record_json(key, response)
            return IoResult(value, payload_id)

    async def record_value(self, key: FactKey, value: JsonValue) -> ArtifactId:
        check_fact_key(key)
        async with self._facts._exclusive(key):
            return (await self._record_json(key, value))[1]

    async def get_recorded_fact(self, key: FactKey) -> ArtifactId | None:
        async with self._facts._exclusive(key):
            return await self._facts.get(key)

    async def now_millis(self) -> int:
        try:
            millis = self._clock()
        except Exception as exc:
            raise io_error(CODE_TIME_UNAVAILABLE, ErrorCategory.UNKNOWN,
                           "system time not available") from exc
        if isinstance(millis, bool) or not isinstance(millis, int) or millis < 0:
            raise io_error(CODE_TIME_UNAVAILABLE, ErrorCategory.UNKNOWN,
                           "system time not available")
        key = check_fact_key(self._keys.next(KIND_NOW_MILLIS))
        async with self._facts._exclusive(key):
            value, _ = await self._record_json(key, millis)
        return time_value(value)

    async def random_bytes(self, n: int) -> bytes:
        check_byte_count(n)
        try:
            data = bytes(self._entropy(n))
        except Exception as exc:
            raise io_error(CODE_RANDOM_UNAVAILABLE, ErrorCategory.UNKNOWN,
                           "os randomness not available") from exc
        if len(data) != n:
            raise io_error(CODE_RANDOM_UNAVAILABLE, ErrorCategory.UNKNOWN,
                           "os randomness not available")
        key = check_fact_key(self._keys.next(KIND_RANDOM_BYTES))
        async with self._facts._exclusive(key):
            bound = await self._facts.get(key)
            if bound is None:
                own, bound = await self._store_and_bind(key, CheckedBytes(data))
                if bound == own:
                    return data
        return random_value(await load_bytes(self._artifacts, bound), n)

    # Callers hold self._facts._exclusive(key).

    async def _record_json(self, key: FactKey, value: JsonValue,
                           refs: tuple[ArtifactId, ...] = ()) -> tuple[JsonValue, ArtifactId]:
        bound = await self._facts.get(key)
        if bound is not None:
            return await load_json(self._artifacts, bound), bound
        data = _canonical_payload(value)
        payload_id, bound = await self._store_and_bind(key, data, refs)
        if bound == payload_id:
            # The recorded form (sorted keys, lists, no aliasing): what resume and replay
            # will serve, so that a handler sees the same value live and replayed.
            return decode_json(data), payload_id
        return await load_json(self._artifacts, bound), bound

    async def _store_and_bind(self, key: FactKey, data: bytes,
                              refs: tuple[ArtifactId, ...] = ()) -> tuple[ArtifactId, ArtifactId]:
        """Store the payload and bind it; returns ``(own payload id, effective payload id)``."""
        if self._fused:
            payload_id = artifact_id_for_bytes(data)
            return payload_id, await self._bind(key, payload_id, data, refs)
        payload_id = await self._put(data)
        return payload_id, await self._bind(key, payload_id, None, refs)

    async def _put(self, data: bytes) -> ArtifactId:
        try:
            return await self._artifacts.put(ArtifactKind.FACT_PAYLOAD, data)
        except StorageError as exc:
            raise io_error(CODE_FACT_PAYLOAD_PUT_FAILED, ErrorCategory.STORAGE,
                           "failed to store fact payload") from exc

    async def _bind(self, key: FactKey, payload_id: ArtifactId, data: bytes | None = None,
                    refs: tuple[ArtifactId, ...] = ()) -> ArtifactId:
        """Bind in memory, then durably (storing ``data`` too, if given, through the fused
        recorder, and the declared ``refs``); returns the effective (possibly foreign)
        payload id."""
        bound, inserted = await self._facts.bind_if_unset(key, payload_id)
        if not inserted:
            return bound
        # refs are passed only when declared: recorders written before them keep working.
        if data is not None:  # only given when self._fused
            recorder = cast(PayloadFactRecorder, self._recorder)
            record = (recorder.record_fact_payload(key, bound, data, refs=refs) if refs
                      else recorder.record_fact_payload(key, bound, data))
        else:
            record = (self._recorder.record_fact_binding(key, bound, refs=refs) if refs
                      else self._recorder.record_fact_binding(key, bound))
        try:
            durable = await record
        except BaseException:
            # Also on cancellation. If the write committed anyway (a cancellation while the
            # store waited for another process's lock), the next call finds the store's
            # binding as the winner: the store stays right; only the transport may be asked
            # again. The engine's writer waits for such a write's outcome (see RunWriter).
            await self._facts.unbind_if_matches(key, bound)
            raise
        return await self._adopt(key, bound, durable)

    async def _adopt(self, key: FactKey, bound: ArtifactId,
                     durable: FactBinding | ArtifactId | None) -> ArtifactId:
        """Make the index hold the durable outcome: ours, or another writer's winner."""
        winner = durable.payload_id if isinstance(durable, FactBinding) else durable
        if winner is not None and winner != bound:
            await self._facts.unbind_if_matches(key, bound)
            bound, _ = await self._facts.bind_if_unset(key, ArtifactId(winner))
        return bound


def _canonical_payload(value: JsonValue) -> bytes:
    """Canonical, secret-scanned bytes, marked so that the store does not scan them again."""
    try:
        return CheckedBytes(canonical_json_bytes(value))
    except SecretsNotAllowedError as exc:
        raise io_error(CODE_SECRETS_DETECTED, ErrorCategory.UNKNOWN,
                       f"fact payload contained secrets {SECRETS_SUFFIX}") from exc
    except FloatNotAllowedError as exc:
        raise io_error(
            CODE_FACT_PAYLOAD_NOT_CANONICAL, ErrorCategory.PARSING_INPUT,
            "fact payload is not canonical-json-hashable (floats are forbidden)") from exc
    except CanonicalJsonError as exc:
        raise io_error(CODE_FACT_PAYLOAD_NOT_CANONICAL, ErrorCategory.PARSING_INPUT,
                       "fact payload is not canonical-json-hashable (not a JSON value)") from exc
