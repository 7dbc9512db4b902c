"""Write rules every backend applies before touching its storage (SPEC §5.1)."""

from __future__ import annotations

import time
from collections.abc import Sequence

from .errors import (
    CODE_CONCURRENCY,
    CODE_FACT_BINDING_CONFLICT,
    CODE_INVALID_ENVELOPES,
    ConcurrencyError,
    StorageError,
)
from .events import DOMAIN_FACT_RECORDED, DomainEvent, EventEnvelope, RunCompleted, RunStarted
from .ids import ArtifactId, RunId

STATUS_RUNNING = "running"


def now_millis() -> int:
    return time.time_ns() // 1_000_000


def check_envelopes(run_id: RunId, expected_seq: int, envelopes: Sequence[EventEnvelope]) -> None:
    """Raise ``StorageError`` unless envelopes belong to ``run_id`` with seqs expected+1...."""
    if not isinstance(run_id, RunId):
        raise StorageError(f"run_id must be a RunId, got {type(run_id).__name__}",
                           code=CODE_INVALID_ENVELOPES)
    if not isinstance(expected_seq, int) or expected_seq < 0:
        raise StorageError(f"invalid expected_seq: {expected_seq!r}", code=CODE_INVALID_ENVELOPES)
    for offset, env in enumerate(envelopes, start=1):
        if not isinstance(env, EventEnvelope):
            raise StorageError(f"not an EventEnvelope: {env!r}", code=CODE_INVALID_ENVELOPES)
        if env.run_id is not run_id and env.run_id != run_id:
            raise StorageError(f"envelope run_id {env.run_id} is not {run_id}",
                               code=CODE_INVALID_ENVELOPES)
        if env.seq != expected_seq + offset:
            raise StorageError(
                f"envelope seq {env.seq} is not {expected_seq + offset} (run {run_id}); "
                "seqs must continue the head contiguously", code=CODE_INVALID_ENVELOPES)


def fact_binding_of(event: object) -> tuple[str, ArtifactId] | None:
    """``(key, payload_id)`` if ``event`` is a well-formed ``fact_recorded`` event, else None."""
    if not isinstance(event, DomainEvent) or event.name != DOMAIN_FACT_RECORDED:
        return None
    payload = event.payload
    if not isinstance(payload, dict):
        return None
    key, pid = payload.get("key"), payload.get("payload_id")
    if not isinstance(key, str) or not isinstance(pid, str):
        return None
    try:
        return key, ArtifactId(pid)
    except ValueError:
        return None


def fact_recorded_event(key: str, payload_id: ArtifactId) -> DomainEvent:
    return DomainEvent(DOMAIN_FACT_RECORDED, {"key": key, "payload_id": payload_id, "meta": {}})


def head_moved(run_id: RunId | str, expected: int, head: int) -> ConcurrencyError:
    return ConcurrencyError(f"run {run_id}: expected head {expected}, found {head}",
                            code=CODE_CONCURRENCY)


def binding_conflict(run_id: RunId | str, key: str, bound: str, new: str) -> ConcurrencyError:
    return ConcurrencyError(
        f"fact {key!r} of run {run_id} is bound to {bound}; refusing {new}",
        code=CODE_FACT_BINDING_CONFLICT)


def status_after(event: object) -> str | None:
    """The run status an event sets, if any."""
    if isinstance(event, RunCompleted):
        return event.status.value.lower()
    return None


def op_id_of(event: object) -> str | None:
    return event.op_id if isinstance(event, RunStarted) else None
