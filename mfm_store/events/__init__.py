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

The three jobs live in their own modules: the types and their JSON form (``_wire``), which
Python values are JSON the crate can read (``_json``), the stored CBOR (``_cbor``).
"""

from __future__ import annotations

from ._cbor import check_envelope, decode_event, encode_event
from ._json import DETAILS_MAX_DEPTH, PAYLOAD_MAX_DEPTH, check_json_value
from ._wire import (
    DOMAIN_ARTIFACT_WRITTEN,
    DOMAIN_CHILD_RUN_COMPLETED,
    DOMAIN_CHILD_RUN_SPAWNED,
    DOMAIN_FACT_RECORDED,
    DOMAIN_OP_BOUNDARY,
    TS_MILLIS_MAX,
    DomainEvent,
    Event,
    EventEnvelope,
    InvalidEventError,
    KernelEvent,
    RunCompleted,
    RunStarted,
    RunStatus,
    StateCompleted,
    StateEntered,
    StateError,
    StateFailed,
    event_from_json,
)

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
