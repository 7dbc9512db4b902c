"""Events and envelopes in the interchange form of mfm-machine (SPEC §3).

``to_json()`` returns the externally tagged serde form as Python dicts, every optional present
as ``None``; ``from_json()`` reverses it and re-validates ids. Storage keeps the same form as
CBOR (:func:`encode_event`, :func:`decode_event`).
"""

from __future__ import annotations

import enum
import math
from typing import Any, ClassVar, TypeAlias

import attrs
import cbor2

from .errors import ErrorInfo
from .ids import ArtifactId, OpId, RunId, StateId

__all__ = [
    "DOMAIN_ARTIFACT_WRITTEN",
    "DOMAIN_CHILD_RUN_COMPLETED",
    "DOMAIN_CHILD_RUN_SPAWNED",
    "DOMAIN_FACT_RECORDED",
    "DOMAIN_OP_BOUNDARY",
    "DomainEvent",
    "Event",
    "EventEnvelope",
    "KernelEvent",
    "RunCompleted",
    "RunStarted",
    "RunStatus",
    "StateCompleted",
    "StateEntered",
    "StateError",
    "StateFailed",
    "decode_event",
    "encode_event",
    "event_from_json",
]

DOMAIN_FACT_RECORDED = "fact_recorded"
DOMAIN_ARTIFACT_WRITTEN = "artifact_written"
DOMAIN_OP_BOUNDARY = "op_boundary"
DOMAIN_CHILD_RUN_SPAWNED = "child_run_spawned"
DOMAIN_CHILD_RUN_COMPLETED = "child_run_completed"


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
        return {"state_id": self.state_id, "info": self.info.to_json()}

    @classmethod
    def from_json(cls, obj: Any) -> StateError:
        sid = obj["state_id"]
        return cls(None if sid is None else StateId(sid), ErrorInfo.from_json(obj["info"]))


class _Kernel:
    """Mixin giving kernel events their tagged JSON form."""

    __slots__ = ()
    _tag: ClassVar[str]

    def _body(self) -> dict[str, Any]:
        raise NotImplementedError

    def to_json(self) -> dict[str, Any]:
        return {"Kernel": {self._tag: self._body()}}

    @classmethod
    def from_json(cls, obj: Any) -> Any:
        event = event_from_json(obj)
        if not isinstance(event, cls):
            raise ValueError(f"not a {cls.__name__} event: {obj!r}")
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
        return {"Domain": {"name": self.name, "payload": self.payload,
                           "payload_ref": self.payload_ref}}

    @classmethod
    def from_json(cls, obj: Any) -> DomainEvent:
        event = event_from_json(obj)
        if not isinstance(event, DomainEvent):
            raise ValueError(f"not a Domain event: {obj!r}")
        return event


KernelEvent: TypeAlias = RunStarted | StateEntered | StateCompleted | StateFailed | RunCompleted
Event: TypeAlias = KernelEvent | DomainEvent


def _kernel_from_json(tag: str, b: dict[str, Any]) -> KernelEvent:
    if tag == "RunStarted":
        return RunStarted(b["op_id"], b["manifest_id"], b["initial_snapshot_id"])
    if tag == "StateEntered":
        attempt = b["attempt"]
        if not isinstance(attempt, int) or isinstance(attempt, bool) or attempt < 0:
            raise ValueError(f"invalid attempt: {attempt!r}")
        return StateEntered(b["state_id"], attempt, b["base_snapshot_id"])
    if tag == "StateCompleted":
        return StateCompleted(b["state_id"], b["context_snapshot_id"])
    if tag == "StateFailed":
        return StateFailed(b["state_id"], StateError.from_json(b["error"]),
                           b["failure_snapshot_id"])
    if tag == "RunCompleted":
        return RunCompleted(RunStatus(b["status"]), b["final_snapshot_id"])
    raise ValueError(f"unknown kernel event: {tag!r}")


def event_from_json(obj: Any) -> Event:
    """Decode the tagged form; raises ``ValueError`` (ids: ``IdValidationError``) if malformed."""
    try:
        ((outer, inner),) = obj.items()
        if outer == "Domain":
            name = inner["name"]
            if not isinstance(name, str):
                raise ValueError(f"invalid domain event name: {name!r}")
            return DomainEvent(name, inner["payload"], inner["payload_ref"])
        if outer == "Kernel":
            ((tag, body),) = inner.items()
            return _kernel_from_json(tag, body)
    except (AttributeError, KeyError, TypeError) as exc:
        raise ValueError(f"malformed event: {obj!r}") from exc
    raise ValueError(f"malformed event: {obj!r}")


@attrs.frozen
class EventEnvelope:
    """One event of a run's stream; ``seq`` starts at 1 and is contiguous per run."""

    run_id: RunId
    seq: int
    ts_millis: int | None
    event: Event

    def to_json(self) -> dict[str, Any]:
        return {"run_id": str(self.run_id), "seq": self.seq, "ts_millis": self.ts_millis,
                "event": self.event.to_json()}

    @classmethod
    def from_json(cls, obj: Any) -> EventEnvelope:
        try:
            seq, ts = obj["seq"], obj["ts_millis"]
            run_id, event = obj["run_id"], obj["event"]
        except (KeyError, TypeError) as exc:
            raise ValueError(f"malformed envelope: {obj!r}") from exc
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
            raise ValueError(f"invalid seq: {seq!r}")
        if ts is not None and (not isinstance(ts, int) or isinstance(ts, bool)):
            raise ValueError(f"invalid ts_millis: {ts!r}")
        return cls(RunId.parse(run_id), seq, ts, event_from_json(event))


def check_json_value(value: Any, where: str = "payload") -> None:
    """Raise ``ValueError`` unless ``value`` is JSON the Rust crate can read back.

    Allowed: dict with str keys, list, str, bool, None, int within i64/u64, finite float.
    """
    try:
        _check_json(value)
    except RecursionError:
        raise ValueError(f"{where}: nested too deeply") from None
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


_I64_MIN, _U64_MAX = -(2**63), 2**64 - 1


def _check_json(v: Any) -> None:
    t = type(v)
    if t is str or t is bool or v is None:
        return
    if t is int:
        if not _I64_MIN <= v <= _U64_MAX:
            raise ValueError(f"integer out of i64/u64 range: {v}")
    elif t is dict:
        for k, item in v.items():
            if type(k) is not str and not isinstance(k, str):
                raise ValueError(f"object key is not a string: {k!r}")
            ti = type(item)
            # Plain scalars are checked here: a call per value would double the cost.
            if not (ti is str or ti is bool or item is None
                    or (ti is int and _I64_MIN <= item <= _U64_MAX)):
                _check_json(item)
    elif t is list:
        for item in v:
            ti = type(item)
            if not (ti is str or ti is bool or item is None
                    or (ti is int and _I64_MIN <= item <= _U64_MAX)):
                _check_json(item)
    elif t is float:
        if not math.isfinite(v):
            raise ValueError(f"non-finite float: {v}")
    elif isinstance(v, str):  # subclasses such as ArtifactId
        return
    elif isinstance(v, int) and not isinstance(v, bool):
        _check_json(int(v))
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
            raise ValueError(f"event name is not a string: {name!r}")
        return _cbor_text(name)
    encoded = _names.get(name)
    if encoded is None:
        encoded = _cbor_text(name)
        if len(name) <= 64 and len(_names) < 1024:  # only the short names apps reuse
            _names[name] = encoded
    return encoded


def encode_event(event: Event) -> bytes:
    """CBOR of the event's interchange form: what the stores keep as the event body.

    Raises ``ValueError`` if a domain payload or error details are not JSON.
    """
    if type(event) is DomainEvent:
        try:
            _check_json(event.payload)
        except (ValueError, RecursionError):
            check_json_value(event.payload)  # raises with the full message
        ref = event.payload_ref
        tail = _PAYLOAD_REF_NULL if ref is None else _PAYLOAD_REF_KEY + _cbor_text(ref)
        return b"".join((_DOMAIN_HEAD, _cbor_name(event.name), _PAYLOAD_KEY,
                         cbor2.dumps(event.payload), tail))
    if isinstance(event, StateFailed):
        check_json_value(event.error.info.details, "error details")
    return cbor2.dumps(event.to_json())


def decode_event(body: bytes) -> Event:
    return event_from_json(cbor2.loads(body))
