"""The stored form of events: CBOR of their interchange form, free-form JSON in the order it
was given, the frame of domain events written by hand; see :mod:`mfm_store.events`."""

from __future__ import annotations

from typing import Any

import cbor2

from ._json import DETAILS_MAX_DEPTH, PAYLOAD_MAX_DEPTH, check_json, check_json_value
from ._wire import (
    DomainEvent,
    Event,
    EventEnvelope,
    InvalidEventError,
    KernelEvent,
    RunCompleted,
    RunStarted,
    StateCompleted,
    StateEntered,
    StateFailed,
    check_attempt,
    event_from_json,
)

_KERNEL_TYPES = (RunStarted, StateEntered, StateCompleted, StateFailed, RunCompleted)


def _stored(event: KernelEvent) -> dict[str, Any]:
    """A kernel event's interchange form, error details in their given order."""
    if type(event) is StateFailed:
        error = event.error
        return {"Kernel": {"StateFailed": {
            "state_id": event.state_id,
            "error": {"state_id": error.state_id, "info": error.info.to_json()},
            "failure_snapshot_id": event.failure_snapshot_id}}}
    return event.to_json()


def check_envelope(env: EventEnvelope) -> None:
    """Raise :class:`InvalidEventError` unless the crate can read ``env`` back and a store
    can hold it (the checks of construction and of :func:`encode_event`)."""
    if not isinstance(env, EventEnvelope):
        raise InvalidEventError(f"not an EventEnvelope: {env!r}")
    EventEnvelope(env.run_id, env.seq, env.ts_millis, env.event)
    encode_event(env.event)


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
                check_json(payload, PAYLOAD_MAX_DEPTH)
            except (ValueError, RecursionError):
                check_json_value(payload)  # raises with the full message
            ref = event.payload_ref
            tail = _PAYLOAD_REF_NULL if ref is None else _PAYLOAD_REF_KEY + _cbor_text(ref)
            return b"".join((_DOMAIN_HEAD, _cbor_name(event.name), _PAYLOAD_KEY,
                             cbor2.dumps(payload), tail))
        if isinstance(event, StateFailed):
            check_json_value(event.error.info.details, "error details", DETAILS_MAX_DEPTH)
        elif isinstance(event, StateEntered):
            check_attempt(event.attempt)
        elif not isinstance(event, _KERNEL_TYPES):
            raise InvalidEventError(f"not an event: {event!r}")
        return cbor2.dumps(_stored(event))
    except UnicodeEncodeError:
        raise InvalidEventError("a string of the event is not valid Unicode (a lone "
                                "surrogate); the crate cannot read it") from None


def decode_event(body: bytes) -> Event:
    """The event of a stored body (what :func:`encode_event` made)."""
    obj = cbor2.loads(body)
    # The common case, a domain event without payload_ref, built without the general
    # decoder's steps (cold_load reads 10k events); anything else takes the general path.
    if type(obj) is dict and len(obj) == 1:
        inner = obj.get("Domain")
        if type(inner) is dict and inner.get("payload_ref") is None:
            name = inner.get("name")
            if type(name) is str and "payload" in inner:
                event = _new_domain(DomainEvent)
                _set(event, "name", name)
                _set(event, "payload", inner["payload"])
                _set(event, "payload_ref", None)
                return event
    return event_from_json(obj)


_new_domain = object.__new__
_set = object.__setattr__
