"""Pieces shared by LiveIo and ReplayIo: derived fact keys, payload reads, error builders.

Both IO providers must derive the same keys and read payloads the same way, or a run recorded
live would not replay; keeping these in one module is what guarantees that.
"""

from __future__ import annotations

import json
import json.encoder
from typing import Any, NoReturn

from ._rules import CheckedBytes
from .canonical import (
    MAX_JSON_DEPTH,
    artifact_id_for_bytes,
    canonical_json_bytes,
    string_contains_secrets,
)
from .errors import (
    CODE_FACT_PAYLOAD_DECODE_FAILED,
    CODE_FACT_PAYLOAD_GET_FAILED,
    CODE_FACT_PAYLOAD_INVALID,
    CODE_FACT_PAYLOAD_NOT_CANONICAL,
    CODE_INVALID_FACT_KEY,
    CODE_SECRETS_DETECTED,
    CanonicalJsonError,
    ErrorCategory,
    ErrorInfo,
    FloatNotAllowedError,
    IoError,
    SecretsNotAllowedError,
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


class CheckedKey(str):
    """A fact key :func:`check_fact_key` accepted (non-empty, valid Unicode, no secret): the
    recorder and the SQLite store it is handed to do not scan it again."""

    __slots__ = ()


class CheckedPayload(CheckedBytes):
    """A fact payload made by ``LiveIo``: canonical JSON, secret-scanned, with its SHA-256
    (``artifact_id``), so that a store recording it neither scans nor hashes it again."""

    artifact_id: ArtifactId

    @classmethod
    def of(cls, data: bytes, artifact_id: ArtifactId) -> CheckedPayload:
        made = cls(data)
        made.artifact_id = artifact_id
        return made


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
    (``secrets_detected``). Returns the key marked as checked (:class:`CheckedKey`)."""
    if type(key) is CheckedKey:
        return key
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
    return CheckedKey(key)


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


# Canonical fact payloads, and the form in which a handler gets them back.

def _not_json(value: object) -> NoReturn:
    raise TypeError(f"not JSON: {type(value).__name__}")


# canonical_json_bytes's encoding (no whitespace, sorted keys, strings as ensure_ascii=False
# writes them), made once: JSONEncoder.encode builds a new C encoder on every call, which
# costs as much as the encoding of a small payload (benchmarks ``facts``, fsync-free CPU).
_encode: Any = getattr(json.encoder, "c_make_encoder", None)  # None outside CPython
if _encode is not None:
    _encode = _encode(None, _not_json, json.encoder.encode_basestring, None, ":", ",", True,
                      False, False)
_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True,
                            allow_nan=False)


def _encoded(recorded: Any) -> bytes:
    if _encode is None:
        return _encoder.encode(recorded).encode("utf-8")
    return "".join(_encode(recorded, 0)).encode("utf-8")
_I64_MIN = -(2**63)
_MNEMONIC_MIN = 23  # twelve one-letter words and the eleven spaces between them


class _Unusual(Exception):
    """Something :func:`canonical_json_bytes` must judge (a float, a secret, a foreign type)."""


def _recorded(value: Any, room: int, strings: list[str]) -> Any:
    """A copy of ``value`` as a replay reads it back (objects with sorted keys, tuples as
    lists, nothing shared), collecting its strings; raises ``_Unusual`` for anything but
    plain JSON types, integers within i64/u64, and nesting within ``MAX_JSON_DEPTH``."""
    t = type(value)
    if t is str:
        strings.append(value)
        return value
    if t is int:
        if not _I64_MIN <= value <= U64_MAX:
            raise _Unusual
        return value
    if value is None or t is bool:
        return value
    if room <= 0:
        raise _Unusual
    if t is dict:
        out = {}
        for k, v in sorted(value.items()):
            if type(k) is not str:
                raise _Unusual
            strings.append(k)
            # Leaves inline: a call per member costs more than the member's check.
            tv = type(v)
            if tv is str:
                strings.append(v)
                out[k] = v
            elif tv is int and _I64_MIN <= v <= U64_MAX:
                out[k] = v
            else:
                out[k] = _recorded(v, room - 1, strings)
        return out
    if t is list or t is tuple:
        return [_recorded(v, room - 1, strings) for v in value]
    raise _Unusual


def canonical_payload(value: JsonValue) -> tuple[CheckedPayload, JsonValue]:
    """The canonical bytes of a fact payload (marked as checked, with their SHA-256) and its
    recorded form, in one walk of ``value``: what ``LiveIo`` stores and what it returns.

    The bytes are those of :func:`~mfm_store.canonical.canonical_json_bytes`, and so are the
    refusals: anything the walk does not pass as plain JSON free of secrets (a float, a
    foreign type, a possible secret) goes to that function, which decides (``IoError``
    ``secrets_detected`` or ``fact_payload_not_canonical``, nothing stored). The secret scan
    searches all strings at once (joined by NUL, which no needle holds) and checks the strings
    long enough to be a mnemonic one by one.
    """
    strings: list[str] = []
    try:
        recorded = _recorded(value, MAX_JSON_DEPTH, strings)
        if strings:
            if string_contains_secrets("\x00".join(strings)):
                raise _Unusual
            for s in strings:
                if len(s) >= _MNEMONIC_MIN and string_contains_secrets(s):
                    raise _Unusual
        data = _encoded(recorded)
    except (_Unusual, RecursionError, TypeError, UnicodeEncodeError):
        data = _canonical_or_io_error(value)
        recorded = decode_json(data)
    return CheckedPayload.of(data, artifact_id_for_bytes(data)), recorded


def _canonical_or_io_error(value: JsonValue) -> bytes:
    try:
        return canonical_json_bytes(value)
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
