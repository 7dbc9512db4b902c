"""The event and envelope types and their interchange (serde JSON) form (SPEC §3); see
:mod:`mfm_store.events`."""

from __future__ import annotations

import enum
import json
from typing import Any, ClassVar, TypeAlias

import attrs

from ..canonical import serde_json_text, sorted_json
from ..errors import CODE_INVALID_ENVELOPES, ErrorInfo, StorageError
from ..ids import ArtifactId, OpId, RunId, StateId

DOMAIN_FACT_RECORDED = "fact_recorded"
DOMAIN_ARTIFACT_WRITTEN = "artifact_written"
DOMAIN_OP_BOUNDARY = "op_boundary"
DOMAIN_CHILD_RUN_SPAWNED = "child_run_spawned"
DOMAIN_CHILD_RUN_COMPLETED = "child_run_completed"

_U64_MAX, _U32_MAX = 2**64 - 1, 2**32 - 1
# The crate's ts_millis is a u64; SQLite's INTEGER (and PostgreSQL's BIGINT) an i64, so the
# stores hold 0 .. 2**63 - 1.
TS_MILLIS_MAX = 2**63 - 1

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

    @classmethod
    def from_json(cls, obj: Any) -> DomainEvent:
        event = event_from_json(obj)
        if not isinstance(event, DomainEvent):
            raise InvalidEventError(f"not a Domain event: {obj!r}")
        return event


KernelEvent: TypeAlias = RunStarted | StateEntered | StateCompleted | StateFailed | RunCompleted
Event: TypeAlias = KernelEvent | DomainEvent


def check_attempt(attempt: Any) -> None:
    if isinstance(attempt, bool) or not isinstance(attempt, int) or not 0 <= attempt <= _U32_MAX:
        raise InvalidEventError(f"invalid attempt: {attempt!r} (an integer 0..2**32-1)")


def _kernel_from_json(tag: str, b: dict[str, Any]) -> KernelEvent:
    # Missing Option fields read as None, as serde reads them.
    if tag == "RunStarted":
        return RunStarted(b["op_id"], b["manifest_id"], b["initial_snapshot_id"])
    if tag == "StateEntered":
        attempt = b["attempt"]
        check_attempt(attempt)
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


