"""The data every side writes: small domain events, fact answers, artifact bytes.

Both sides of a comparison get the same data; anything a caller would have ready before calling
(envelopes, pre-encoded rows for the raw baseline) is built outside the timed section.
"""

from __future__ import annotations

import os
from typing import Any

from mfm_store.events import DOMAIN_FACT_RECORDED, DomainEvent, EventEnvelope
from mfm_store.ids import RunId

__all__ = ["bench_event", "envelopes", "fact_answer", "fact_recorded", "random_blobs"]

_NOTE = "workflow step finished; nothing to see here"  # ~40 bytes of text per event


def bench_event(i: int) -> DomainEvent:
    """A typical small domain event: about 90 bytes of CBOR."""
    return DomainEvent("bench_tick", {"i": i, "note": _NOTE, "ok": True})


def envelopes(run_id: RunId, after_seq: int, n: int) -> list[EventEnvelope]:
    return [EventEnvelope(run_id, after_seq + k, None, bench_event(after_seq + k))
            for k in range(1, n + 1)]


def fact_recorded(run_id: RunId, seq: int, key: str, payload_id: str) -> EventEnvelope:
    """The ``fact_recorded`` event ``bind_fact`` appends (SPEC §3)."""
    payload = {"key": key, "payload_id": payload_id, "meta": {}}
    return EventEnvelope(run_id, seq, None, DomainEvent(DOMAIN_FACT_RECORDED, payload))


def fact_answer(i: int) -> dict[str, Any]:
    """What the instant transport answers: a small canonical JSON object (no floats)."""
    return {"status": 200, "body": {"price_cents": 12_345 + i, "symbol": "MFM"}, "n": i}


def random_blobs(size: int, count: int) -> list[bytes]:
    """Distinct random blobs, so that content addressing never deduplicates a put."""
    return [os.urandom(size) for _ in range(count)]
