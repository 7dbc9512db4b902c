"""Live IO (SPEC §6): every external observation a state makes, recorded once as a fact.

A state handler receives an :class:`IoProvider`: :class:`LiveIo` when a run executes, or
``ReplayIo`` (``mfm_store.replay_io``) when it is replayed from its facts. Transports are passed
in (:class:`LiveIoTransport`, built per attempt by a :class:`LiveIoTransportFactory`), never
looked up globally. The IO value types and protocols live in ``mfm_store.io_types``, the
transport registry and router in ``mfm_store.transports``; both are importable from here too.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import cast

from ._io_common import (
    KIND_NOW_MILLIS,
    KIND_RANDOM_BYTES,
    CheckedPayload,
    DerivedKeys,
    JsonValue,
    canonical_payload,
    check_attempt,
    check_byte_count,
    check_fact_key,
    io_error,
    load_bytes,
    load_json,
    random_value,
    time_value,
)
from ._rules import now_millis
from .canonical import artifact_id_for_bytes
from .errors import (
    CODE_FACT_PAYLOAD_PUT_FAILED,
    CODE_RANDOM_UNAVAILABLE,
    CODE_TIME_UNAVAILABLE,
    ErrorCategory,
    StorageError,
    TransportRegistryError,
)
from .facts import FactIndex, FactRecorder, PayloadFactRecorder
from .ids import ArtifactId, FactKey, RunId, StateId
from .io_types import (
    IoAnswer,
    IoCall,
    IoProvider,
    IoResult,
    LiveIoEnv,
    LiveIoTransport,
    LiveIoTransportFactory,
)
from .stores import ArtifactKind, ArtifactStore, FactBinding
from .transports import (
    RouterLiveIoTransportFactory,
    TransportRegistry,
    UnimplementedLiveIoTransportFactory,
)

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

    Tasks sharing one :class:`FactIndex` are serialised per key
    (:meth:`FactIndex.exclusive`): a second call for a key waits for the first one's outcome
    and then reuses its fact, so the transport is asked
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
        key = check_fact_key(key)
        facts = self._facts
        async with facts.exclusive(key):
            bound = await facts.get(key)
            if bound is not None:
                return IoResult(await load_json(self._artifacts, bound), bound)
            response = await self._transport.call(call)
            refs: tuple[ArtifactId, ...] = ()
            if type(response) is IoAnswer:
                response, refs = response.response, response.refs
            # _record_new, inlined: one coroutine fewer for every new fact.
            payload, recorded = canonical_payload(response)
            bound = await self._store_and_bind(key, payload, refs)
            if bound == payload.artifact_id:
                return IoResult(recorded, bound)
            return IoResult(await load_json(self._artifacts, bound), bound)

    async def record_value(self, key: FactKey, value: JsonValue) -> ArtifactId:
        key = check_fact_key(key)
        async with self._facts.exclusive(key):
            bound = await self._facts.get(key)
            if bound is not None:
                await load_json(self._artifacts, bound)  # a bound payload must still read
                return bound
            return (await self._record_new(key, value))[1]

    async def get_recorded_fact(self, key: FactKey) -> ArtifactId | None:
        async with self._facts.exclusive(key):
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
        async with self._facts.exclusive(key):
            bound = await self._facts.get(key)
            if bound is not None:
                return time_value(await load_json(self._artifacts, bound))
            value, _ = await self._record_new(key, millis)
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
        async with self._facts.exclusive(key):
            bound = await self._facts.get(key)
            if bound is None:
                # Stored raw: marked as checked (never scanned as JSON), with its id.
                payload = CheckedPayload.of(data, artifact_id_for_bytes(data))
                bound = await self._store_and_bind(key, payload)
                if bound == payload.artifact_id:
                    return data
        return random_value(await load_bytes(self._artifacts, bound), n)

    # Callers hold self._facts.exclusive(key) and found the key unbound.

    async def _record_new(self, key: FactKey, value: JsonValue,
                          refs: tuple[ArtifactId, ...] = ()) -> tuple[JsonValue, ArtifactId]:
        """Record ``value`` (canonical, secret-free: refused otherwise, nothing stored) as the
        fact ``key``; returns what replay will serve and the effective payload id."""
        payload, recorded = canonical_payload(value)
        bound = await self._store_and_bind(key, payload, refs)
        if bound == payload.artifact_id:
            # The recorded form (sorted keys, lists, no aliasing): what resume and replay
            # will serve, so that a handler sees the same value live and replayed.
            return recorded, bound
        return await load_json(self._artifacts, bound), bound

    async def _store_and_bind(self, key: FactKey, payload: CheckedPayload,
                              refs: tuple[ArtifactId, ...] = ()) -> ArtifactId:
        """Store the payload and bind it: in memory, then durably (through the fused recorder
        in one write when there is one, with the declared ``refs``); returns the effective
        (possibly foreign) payload id."""
        facts = self._facts
        payload_id = payload.artifact_id if self._fused else await self._put(payload)
        bound, inserted = await facts.bind_if_unset(key, payload_id)
        if not inserted:
            return bound
        # refs are passed only when declared: recorders written before them keep working.
        if self._fused:
            recorder = cast(PayloadFactRecorder, self._recorder)
            record = (recorder.record_fact_payload(key, bound, payload, refs=refs) if refs
                      else recorder.record_fact_payload(key, bound, payload))
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
            await facts.unbind_if_matches(key, bound)
            raise
        winner = durable.payload_id if isinstance(durable, FactBinding) else durable
        if winner is not None and winner != bound:
            # Another writer bound the key first: the index adopts its payload.
            await facts.unbind_if_matches(key, bound)
            bound, _ = await facts.bind_if_unset(key, ArtifactId(winner))
        return bound

    async def _put(self, data: bytes) -> ArtifactId:
        try:
            return await self._artifacts.put(ArtifactKind.FACT_PAYLOAD, data)
        except StorageError as exc:
            raise io_error(CODE_FACT_PAYLOAD_PUT_FAILED, ErrorCategory.STORAGE,
                           "failed to store fact payload") from exc
