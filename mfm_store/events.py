"""Events and envelopes in the interchange form of mfm-machine (SPEC §3).

``to_json()`` returns the externally tagged serde form as Python dicts, every optional present
as ``None``, free-form JSON (payloads, error details) with its object keys sorted as the crate
writes them; :meth:`EventEnvelope.to_json_text` gives the crate's exact bytes (floats spelled as
serde_json spells them). ``from_json()`` reverses it, re-validates ids and reads a missing
optional field as ``None``. Storage keeps the same form as CBOR, free-form JSON in the order it
was given (:func:`encode_event`, :func:`decode_event`); sorting happens when JSON is written.

What the crate could not read back is refused before it is stored: :class:`EventEnvelope`
refuses a seq or ts_millis out of range on construction, :func:`encode_event` an event whose
JSON nests too deeply, holds a non-finite float or a lone surrogate, an attempt above u32 or an
empty domain event name. Both raise :class:`InvalidEventError` (a ``ValueError`` and a
``StorageError`` with code ``invalid_envelopes``).
"""

from __future__ import annotations

import enum
import json
import math
from typing import Any, ClassVar, TypeAlias

import attrs
import cbor2

from .canonical import serde_json_text, sorted_json
from .errors import CODE_INVALID_ENVELOPES, ErrorInfo, StorageError
from .ids import ArtifactId, OpId, RunId, StateId

__all__ = [
    "DETAILS_MAX_DEPTH",
    "DOMAIN_ARTIFACT_WRITTEN",
    "DOMAIN_CHILD_RUN_COMPLETED",
    "DOMAIN_CHILD_RUN_SPAWNED",
    "DOMAIN_FACT_RECORDED",
    "DOMAIN_OP_BOUNDARY",
    "PAYLOAD_MAX_DEPTH",
    "TS_MILLIS_MAX",
    "DomainEvent",
    "Event",
    "EventEnvelope",
    "InvalidEventError",
    "KernelEvent",
    "RunCompleted",
    "RunStarted",
    "RunStatus",
    "StateCompleted",
    "StateEntered",
    "StateError",
    "StateFailed",
    "check_envelope",
    "check_json_value",
    "decode_event",
    "encode_event",
    "event_from_json",
]

DOMAIN_FACT_RECORDED = "fact_recorded"
DOMAIN_ARTIFACT_WRITTEN = "artifact_written"
DOMAIN_OP_BOUNDARY = "op_boundary"
DOMAIN_CHILD_RUN_SPAWNED = "child_run_spawned"
DOMAIN_CHILD_RUN_COMPLETED = "child_run_completed"

_I64_MIN, _U64_MAX, _U32_MAX = -(2**63), 2**64 - 1, 2**32 - 1
# The crate's ts_millis is a u64; SQLite's INTEGER (and PostgreSQL's BIGINT) an i64, so the
# stores hold 0 .. 2**63 - 1.
TS_MILLIS_MAX = 2**63 - 1
# serde_json reads a line nested at most 127 deep (canonical.MAX_JSON_DEPTH). A domain payload
# sits inside the envelope, the Event enum and the DomainEvent struct; error details inside the
# envelope, Event, KernelEvent, StateFailed, StateError and ErrorInfo.
PAYLOAD_MAX_DEPTH = 127 - 3
DETAILS_MAX_DEPTH = 127 - 6


class InvalidEventError(StorageError, ValueError):
    """An envelope or event the crate could not read back (or the store could not hold).

    Code ``invalid_envelopes``; nothing was written when it is raised."""

    default_code = CODE_INVALID_ENVELOPES


class RunStatus(enum.Enum):
    COMPLETED = "Completed"
    FAILED = "Failed"
    CANCELLED = "Cancelled"


def _opt_artifact(value: Any) -> ArtifactId | None:
    return None if value is None else ArtifactId(value)


@attrs.frozen
class StateError:
    """A state's failure: which state, and the (already redacted) error info."""

    state_id: StateId | None
    info: ErrorInfo

    def to_json(self) -> dict[str, Any]:
        info = self.info.to_json()
        info["details"] = sorted_json(info["details"])
        return {"state_id": self.state_id, "info": info}

    def _stored(self) -> dict[str, Any]:
        return {"state_id": self.state_id, "info": self.info.to_json()}

    @classmethod
    def from_json(cls, obj: Any) -> StateError:
        sid = obj.get("state_id")  # a missing Option is None, as serde reads it
        return cls(None if sid is None else StateId(sid), ErrorInfo.from_json(obj["info"]))


class _Kernel:
    """Mixin giving kernel events their tagged JSON form."""

    __slots__ = ()
    _tag: ClassVar[str]

    def _body(self) -> dict[str, Any]:
        raise NotImplementedError

    def to_json(self) -> dict[str, Any]:
        return {"Kernel": {self._tag: self._body()}}

    def _stored(self) -> dict[str, Any]:
        """The form kept as CBOR: free-form JSON in its given order."""
        return self.to_json()

    @classmethod
    def from_json(cls, obj: Any) -> Any:
        event = event_from_json(obj)
        if not isinstance(event, cls):
            raise InvalidEventError(f"not a {cls.__name__} event: {obj!r}")
        return event


@attrs.frozen
class RunStarted(_Kernel):
    op_id: OpId = attrs.field(converter=OpId)
    manifest_id: ArtifactId = attrs.field(converter=ArtifactId)
    initial_snapshot_id: ArtifactId = attrs.field(converter=ArtifactId)
    _tag: ClassVar[str] = "RunStarted"

    def _body(self) -> dict[str, Any]:
        return {"op_id": self.op_id, "manifest_id": self.manifest_id,
                "initial_snapshot_id": self.initial_snapshot_id}


@attrs.frozen
class StateEntered(_Kernel):
    state_id: StateId = attrs.field(converter=StateId)
    attempt: int
    base_snapshot_id: ArtifactId = attrs.field(converter=ArtifactId)
    _tag: ClassVar[str] = "StateEntered"

    def _body(self) -> dict[str, Any]:
        return {"state_id": self.state_id, "attempt": self.attempt,
                "base_snapshot_id": self.base_snapshot_id}


@attrs.frozen
class StateCompleted(_Kernel):
    state_id: StateId = attrs.field(converter=StateId)
    context_snapshot_id: ArtifactId = attrs.field(converter=ArtifactId)
    _tag: ClassVar[str] = "StateCompleted"

    def _body(self) -> dict[str, Any]:
        return {"state_id": self.state_id, "context_snapshot_id": self.context_snapshot_id}


@attrs.frozen
class StateFailed(_Kernel):
    state_id: StateId = attrs.field(converter=StateId)
    error: StateError
    failure_snapshot_id: ArtifactId | None = attrs.field(default=None, converter=_opt_artifact)
    _tag: ClassVar[str] = "StateFailed"

    def _body(self) -> dict[str, Any]:
        return {"state_id": self.state_id, "error": self.error.to_json(),
                "failure_snapshot_id": self.failure_snapshot_id}

    def _stored(self) -> dict[str, Any]:
        return {"Kernel": {"StateFailed": {
            "state_id": self.state_id, "error": self.error._stored(),
            "failure_snapshot_id": self.failure_snapshot_id}}}


@attrs.frozen
class RunCompleted(_Kernel):
    status: RunStatus
    final_snapshot_id: ArtifactId | None = attrs.field(default=None, converter=_opt_artifact)
    _tag: ClassVar[str] = "RunCompleted"

    def _body(self) -> dict[str, Any]:
        return {"status": self.status.value, "final_snapshot_id": self.final_snapshot_id}


@attrs.frozen
class DomainEvent:
    """An application event; ``payload`` is any JSON value (floats allowed)."""

    name: str
    payload: Any = None
    payload_ref: ArtifactId | None = attrs.field(default=None, converter=_opt_artifact)

    def to_json(self) -> dict[str, Any]:
        return {"Domain": {"name": self.name, "payload": sorted_json(self.payload),
                           "payload_ref": self.payload_ref}}

    def _stored(self) -> dict[str, Any]:
        return {"Domain": {"name": self.name, "payload": self.payload,
                           "payload_ref": self.payload_ref}}

    @classmethod
    def from_json(cls, obj: Any) -> DomainEvent:
        event = event_from_json(obj)
        if not isinstance(event, DomainEvent):
            raise InvalidEventError(f"not a Domain event: {obj!r}")
        return event


KernelEvent: TypeAlias = RunStarted | StateEntered | StateCompleted | StateFailed | RunCompleted
Event: TypeAlias = KernelEvent | DomainEvent


def _check_attempt(attempt: Any) -> None:
    if isinstance(attempt, bool) or not isinstance(attempt, int) or not 0 <= attempt <= _U32_MAX:
        raise InvalidEventError(f"invalid attempt: {attempt!r} (an integer 0..2**32-1)")


def _kernel_from_json(tag: str, b: dict[str, Any]) -> KernelEvent:
    # Missing Option fields read as None, as serde reads them.
    if tag == "RunStarted":
        return RunStarted(b["op_id"], b["manifest_id"], b["initial_snapshot_id"])
    if tag == "StateEntered":
        attempt = b["attempt"]
        _check_attempt(attempt)
        return StateEntered(b["state_id"], attempt, b["base_snapshot_id"])
    if tag == "StateCompleted":
        return StateCompleted(b["state_id"], b["context_snapshot_id"])
    if tag == "StateFailed":
        return StateFailed(b["state_id"], StateError.from_json(b["error"]),
                           b.get("failure_snapshot_id"))
    if tag == "RunCompleted":
        return RunCompleted(RunStatus(b["status"]), b.get("final_snapshot_id"))
    raise InvalidEventError(f"unknown kernel event: {tag!r}")


def event_from_json(obj: Any) -> Event:
    """Decode the tagged form; raises ``ValueError`` (ids: ``IdValidationError``) if malformed."""
    try:
        ((outer, inner),) = obj.items()
        if outer == "Domain":
            name = inner["name"]
            if not isinstance(name, str):
                raise InvalidEventError(f"invalid domain event name: {name!r}")
            return DomainEvent(name, inner["payload"], inner.get("payload_ref"))
        if outer == "Kernel":
            ((tag, body),) = inner.items()
            return _kernel_from_json(tag, body)
    except (AttributeError, KeyError, TypeError) as exc:
        raise InvalidEventError(f"malformed event: {_show(obj)}") from exc
    except ValueError as exc:
        if hasattr(exc, "info"):
            raise
        raise InvalidEventError(f"malformed event: {exc}") from exc
    raise InvalidEventError(f"malformed event: {_show(obj)}")


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 200 else text[:197] + "..."


@attrs.frozen(init=False)
class EventEnvelope:
    """One event of a run's stream; ``seq`` starts at 1 and is contiguous per run.

    Construction raises :class:`InvalidEventError` unless ``seq`` is an ``int`` (not a
    ``bool``) at most 2**64 - 1 and ``ts_millis`` is ``None`` or an ``int`` in
    0..:data:`TS_MILLIS_MAX`. (A seq below 1 is left to the stores' contiguity check.)
    """

    run_id: RunId
    seq: int
    ts_millis: int | None
    event: Event

    def __init__(self, run_id: RunId, seq: int, ts_millis: int | None, event: Event) -> None:
        # Written by hand (not attrs' __init__ plus a post-init hook): one call per envelope.
        if type(seq) is not int or seq > _U64_MAX:
            seq = _checked_seq(seq)
        if ts_millis is not None and (
                type(ts_millis) is not int or not 0 <= ts_millis <= TS_MILLIS_MAX):
            ts_millis = _checked_ts(ts_millis)
        _set = object.__setattr__
        _set(self, "run_id", run_id)
        _set(self, "seq", seq)
        _set(self, "ts_millis", ts_millis)
        _set(self, "event", event)

    def to_json(self) -> dict[str, Any]:
        return {"run_id": str(self.run_id), "seq": self.seq, "ts_millis": self.ts_millis,
                "event": self.event.to_json()}

    def to_json_text(self) -> str:
        """The envelope's JSON exactly as the crate's serde_json writes it (compact, struct
        fields in declaration order, free-form JSON with sorted keys, ryu floats)."""
        ts = self.ts_millis
        head = (f'{{"run_id":"{self.run_id}","seq":{self.seq},'
                f'"ts_millis":{"null" if ts is None else ts},"event":')
        event = self.event
        if type(event) is DomainEvent:
            ref = event.payload_ref
            return (f'{head}{{"Domain":{{"name":{_json_str(event.name)},"payload":'
                    f'{serde_json_text(event.payload)},"payload_ref":'
                    f'{"null" if ref is None else f"{_Q}{ref}{_Q}"}}}}}}}')
        return f"{head}{serde_json_text(event.to_json(), sort_keys=False)}}}"

    @classmethod
    def from_json(cls, obj: Any) -> EventEnvelope:
        try:
            seq, ts = obj["seq"], obj["ts_millis"]
            run_id, event = obj["run_id"], obj["event"]
        except (KeyError, TypeError) as exc:
            raise InvalidEventError(f"malformed envelope: {_show(obj)}") from exc
        # The crate accepts seq 0; no store ever writes it.
        if isinstance(seq, bool) or not isinstance(seq, int) or seq < 1:
            raise InvalidEventError(f"invalid seq: {seq!r}")
        return cls(RunId.parse(run_id), seq, ts, event_from_json(event))


def _checked_seq(seq: object) -> int:
    if isinstance(seq, bool) or not isinstance(seq, int) or seq > _U64_MAX:
        raise InvalidEventError(f"invalid seq: {_show(seq)} (an integer up to 2**64-1)")
    return int(seq)


def _checked_ts(ts: object) -> int:
    if isinstance(ts, bool) or not isinstance(ts, int) or not 0 <= ts <= TS_MILLIS_MAX:
        raise InvalidEventError(f"invalid ts_millis: {_show(ts)} (None or an integer "
                                "0..2**63-1)")
    return int(ts)


def _json_str(s: str) -> str:
    return _encode_str(s)


_Q = '"'
_encode_str = json.encoder.encode_basestring


def check_envelope(env: EventEnvelope) -> None:
    """Raise :class:`InvalidEventError` unless the crate can read ``env`` back and a store
    can hold it (the checks of construction and of :func:`encode_event`)."""
    if not isinstance(env, EventEnvelope):
        raise InvalidEventError(f"not an EventEnvelope: {env!r}")
    EventEnvelope(env.run_id, env.seq, env.ts_millis, env.event)
    encode_event(env.event)


def check_json_value(value: Any, where: str = "payload",
                     max_depth: int = PAYLOAD_MAX_DEPTH) -> None:
    """Raise :class:`InvalidEventError` unless ``value`` is JSON the Rust crate can read back.

    Allowed: dict with str keys, list, str, bool, None, int within i64/u64, finite float;
    at most ``max_depth`` nested arrays/objects. (Lone surrogates are found when encoding.)
    """
    try:
        _check_json(value, max_depth)
    except (_TooDeep, RecursionError):
        raise InvalidEventError(f"{where} is nested deeper than {max_depth} arrays/objects, "
                                "which the Rust crate's serde_json cannot read") from None
    except ValueError as exc:
        raise InvalidEventError(f"{where}: {exc}") from None


class _TooDeep(ValueError):
    pass


def _check_json(v: Any, room: int) -> None:
    t = type(v)
    if t is str or t is bool or v is None:
        return
    if t is int:
        if not _I64_MIN <= v <= _U64_MAX:
            raise ValueError(f"integer out of i64/u64 range: {v}")
    elif t is dict:
        if room <= 0:
            raise _TooDeep
        for k, item in v.items():
            if type(k) is not str and not isinstance(k, str):
                raise ValueError(f"object key is not a string: {k!r}")
            ti = type(item)
            # Plain scalars are checked here: a call per value would double the cost.
            if not (ti is str or ti is bool or item is None
                    or (ti is int and _I64_MIN <= item <= _U64_MAX)):
                _check_json(item, room - 1)
    elif t is list:
        if room <= 0:
            raise _TooDeep
        for item in v:
            ti = type(item)
            if not (ti is str or ti is bool or item is None
                    or (ti is int and _I64_MIN <= item <= _U64_MAX)):
                _check_json(item, room - 1)
    elif t is float:
        if not math.isfinite(v):
            raise ValueError(f"non-finite float: {v}")
    elif isinstance(v, str):  # subclasses such as ArtifactId
        return
    elif isinstance(v, int) and not isinstance(v, bool):
        _check_json(int(v), room)
    else:
        raise ValueError(f"not a JSON value: {t.__name__}")


def _cbor_text(s: str) -> bytes:
    """CBOR text string (major type 3, definite length), as ``cbor2.dumps`` writes it."""
    data = s.encode("utf-8")
    n = len(data)
    if n < 24:
        head = bytes((0x60 | n,))
    elif n < 0x100:
        head = bytes((0x78, n))
    elif n < 0x10000:
        head = b"\x79" + n.to_bytes(2, "big")
    elif n < 0x100000000:
        head = b"\x7a" + n.to_bytes(4, "big")
    else:
        head = b"\x7b" + n.to_bytes(8, "big")
    return head + data


# {"Domain": {"name": ..., "payload": ..., "payload_ref": ...}} framed by hand around the
# payload's CBOR: cbor2 spends as long on these two small maps as on a typical payload.
_DOMAIN_HEAD = b"\xa1" + _cbor_text("Domain") + b"\xa3" + _cbor_text("name")
_PAYLOAD_KEY = _cbor_text("payload")
_PAYLOAD_REF_NULL = _cbor_text("payload_ref") + b"\xf6"
_PAYLOAD_REF_KEY = _cbor_text("payload_ref")
_names: dict[str, bytes] = {}  # encoded event names; applications use a handful


def _cbor_name(name: str) -> bytes:
    if type(name) is not str:
        if not isinstance(name, str):
            raise InvalidEventError(f"event name is not a string: {name!r}")
        name = str(name)
    encoded = _names.get(name)
    if encoded is None:
        if not name:
            raise InvalidEventError("a domain event needs a name (empty)")
        encoded = _cbor_text(name)
        if len(name) <= 64 and len(_names) < 1024:  # only the short names apps reuse
            _names[name] = encoded
    return encoded


def encode_event(event: Event) -> bytes:
    """CBOR of the event's interchange form: what the stores keep as the event body.

    Raises :class:`InvalidEventError` (a ``ValueError``) if the crate could not read the event
    back: a domain payload or error details that are not JSON (or nest deeper than
    :data:`PAYLOAD_MAX_DEPTH` / :data:`DETAILS_MAX_DEPTH`), a lone surrogate in any string, an
    attempt above 2**32 - 1, an empty or non-text domain event name.
    """
    try:
        if type(event) is DomainEvent:
            payload = event.payload
            try:
                _check_json(payload, PAYLOAD_MAX_DEPTH)
            except (ValueError, RecursionError):
                check_json_value(payload)  # raises with the full message
            ref = event.payload_ref
            tail = _PAYLOAD_REF_NULL if ref is None else _PAYLOAD_REF_KEY + _cbor_text(ref)
            return b"".join((_DOMAIN_HEAD, _cbor_name(event.name), _PAYLOAD_KEY,
                             cbor2.dumps(payload), tail))
        if isinstance(event, StateFailed):
            check_json_value(event.error.info.details, "error details", DETAILS_MAX_DEPTH)
        elif isinstance(event, StateEntered):
            _check_attempt(event.attempt)
        elif not isinstance(event, _Kernel):
            raise InvalidEventError(f"not an event: {event!r}")
        return cbor2.dumps(event._stored())
    except UnicodeEncodeError:
        raise InvalidEventError("a string of the event is not valid Unicode (a lone "
                                "surrogate); the crate cannot read it") from None


def decode_event(body: bytes) -> Event:
    return event_from_json(cbor2.loads(body))
