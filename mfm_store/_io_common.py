"""Pieces shared by LiveIo and ReplayIo: derived fact keys, payload reads, error builders.

Both IO providers must derive the same keys and read payloads the same way, or a run recorded
live would not replay; keeping these in one module is what guarantees that.
"""

from __future__ import annotations

import json
from typing import Any, NoReturn

from .canonical import string_contains_secrets
from .errors import (
    CODE_FACT_PAYLOAD_DECODE_FAILED,
    CODE_FACT_PAYLOAD_GET_FAILED,
    CODE_FACT_PAYLOAD_INVALID,
    CODE_INVALID_FACT_KEY,
    CODE_SECRETS_DETECTED,
    ErrorCategory,
    ErrorInfo,
    IoError,
    StorageError,
)
from .ids import ArtifactId, FactKey, RunId, StateId
from .stores import ArtifactStore

JsonValue = Any  # any JSON value: None, bool, int, float, str, list, dict

KIND_NOW_MILLIS = "now_millis"
KIND_RANDOM_BYTES = "random_bytes"
U32_MAX = 2**32 - 1
U64_MAX = 2**64 - 1

SECRETS_SUFFIX = "(policy forbids persisting secrets)"


def derived_fact_key(kind: str, run_id: RunId, state_id: StateId, attempt: int,
                     ordinal: int) -> FactKey:
    """``mfm:{kind}|run:{run_id}|state:{state_id}|attempt:{attempt}|ord:{ordinal}``."""
    return f"mfm:{kind}|run:{run_id}|state:{state_id}|attempt:{attempt}|ord:{ordinal}"


def check_attempt(attempt: object) -> int:
    if isinstance(attempt, bool) or not isinstance(attempt, int) or not 0 <= attempt <= U32_MAX:
        raise ValueError(f"attempt must be an integer in 0..=2**32-1, got {attempt!r}")
    return attempt


class DerivedKeys:
    """Keys for time and random facts of one state attempt.

    One ordinal, starting at 0 and shared by every kind, is consumed per derived key, so the
    n-th time/random observation of an attempt gets the same key live and in replay.
    """

    __slots__ = ("_attempt", "_next", "_run_id", "_state_id")

    def __init__(self, run_id: RunId, state_id: StateId, attempt: int) -> None:
        self._run_id = run_id
        self._state_id = state_id
        self._attempt = attempt
        self._next = 0

    def next(self, kind: str) -> FactKey:
        ordinal = self._next
        self._next += 1
        return derived_fact_key(kind, self._run_id, self._state_id, self._attempt, ordinal)


def io_error(code: str, category: ErrorCategory, message: str) -> IoError:
    return IoError(message, info=ErrorInfo(code, category, False, message))


def check_fact_key(key: object) -> FactKey:
    """Refuse, before any transport is asked, a key no store would bind: not a non-empty
    string of valid Unicode (``IoError`` ``invalid_fact_key``), or naming a secret
    (``secrets_detected``)."""
    if not isinstance(key, str) or not key:
        raise io_error(CODE_INVALID_FACT_KEY, ErrorCategory.PARSING_INPUT,
                       "fact key must be a non-empty string")
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        raise io_error(CODE_INVALID_FACT_KEY, ErrorCategory.PARSING_INPUT,
                       "fact key is not valid Unicode (lone surrogate)") from None
    if string_contains_secrets(key):
        raise io_error(CODE_SECRETS_DETECTED, ErrorCategory.UNKNOWN,
                       f"fact key contained secrets {SECRETS_SUFFIX}")
    return key


def invalid_payload(message: str) -> IoError:
    return io_error(CODE_FACT_PAYLOAD_INVALID, ErrorCategory.PARSING_INPUT, message)


async def load_bytes(artifacts: ArtifactStore, payload_id: ArtifactId) -> bytes:
    """The payload's bytes; any store failure becomes ``fact_payload_get_failed``."""
    try:
        return await artifacts.get(payload_id)
    except StorageError as exc:
        raise io_error(CODE_FACT_PAYLOAD_GET_FAILED, ErrorCategory.STORAGE,
                       "failed to read fact payload") from exc


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"not JSON: {name}")


def decode_json(data: bytes) -> Any:
    """Strict JSON (UTF-8, no NaN/Infinity) or ``fact_payload_decode_failed``."""
    try:
        return json.loads(data.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise io_error(CODE_FACT_PAYLOAD_DECODE_FAILED, ErrorCategory.PARSING_INPUT,
                       "failed to decode fact payload") from exc


async def load_json(artifacts: ArtifactStore, payload_id: ArtifactId) -> Any:
    return decode_json(await load_bytes(artifacts, payload_id))


def time_value(value: Any) -> int:
    """A recorded time must be a JSON integer in u64 range, else ``fact_payload_invalid``."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= U64_MAX:
        raise invalid_payload("recorded time fact payload was not a u64")
    return value


def random_value(data: bytes, n: int) -> bytes:
    if len(data) != n:
        raise invalid_payload("recorded random_bytes fact payload had unexpected length")
    return data


def check_byte_count(n: object) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"number of random bytes must be a non-negative integer, got {n!r}")
    return n
