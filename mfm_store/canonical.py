"""Canonical JSON, content ids and the secret policy (SPEC §4).

Canonical bytes match the Rust crate's: no whitespace, object keys sorted by code point, strings
escaped as ``json.dumps(ensure_ascii=False)`` does, integers within i64/u64, no floats. The secret
scan runs before the float check, so a secret always wins.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from .errors import (
    CanonicalJsonError,
    ErrorInfo,
    FloatNotAllowedError,
    SecretsNotAllowedError,
)
from .ids import ArtifactId

__all__ = [
    "REDACTED_MESSAGE",
    "artifact_id_for_bytes",
    "artifact_id_for_json",
    "canonical_json_bytes",
    "json_contains_secrets",
    "redact_error_info",
    "string_contains_secrets",
]

REDACTED_MESSAGE = "error details redacted"

_SECRET_NEEDLES = (
    "password", "passphrase", "mnemonic", "private_key", "privatekey", "seed phrase",
    "seed_phrase", "seedphrase", "api_key", "apikey", "x-api-key", "x_api_key", "access_key",
    "accesskey", "secret_key", "secretkey", "aws_access_key_id", "aws_secret_access_key",
    "access_token", "refresh_token", "id_token", "authorization", "bearer ",
)
# Only A-Z is folded: str.lower() would fold e.g. KELVIN SIGN to "k" and differ from Rust.
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_I64_MIN = -(2**63)
_U64_MAX = 2**64 - 1
_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True,
                            allow_nan=False)


_SECRET_RE = re.compile("|".join(re.escape(n) for n in _SECRET_NEEDLES))
_MNEMONIC_MIN_LEN = 12 + 11  # twelve one-letter words and the spaces between them


def _looks_like_mnemonic(s: str) -> bool:
    if len(s) < _MNEMONIC_MIN_LEN:
        return False
    words = s.split()
    if not 12 <= len(words) <= 24:
        return False
    return all(w.isascii() and w.isalpha() and w.islower() for w in words)


def string_contains_secrets(s: str) -> bool:
    """True if ``s`` names a credential or looks like a 12-24 word mnemonic."""
    return _SECRET_RE.search(s.translate(_ASCII_LOWER)) is not None or _looks_like_mnemonic(s)


def json_contains_secrets(value: Any) -> bool:
    """Scan a JSON value recursively, object keys included."""
    if isinstance(value, str):
        return string_contains_secrets(value)
    if isinstance(value, dict):
        return any(
            (isinstance(k, str) and string_contains_secrets(k)) or json_contains_secrets(v)
            for k, v in value.items()
        )
    if isinstance(value, list | tuple):
        return any(json_contains_secrets(v) for v in value)
    return False


def _check(value: Any) -> bool:
    """Secret-scan and type-check in one walk; returns True if a float was seen."""
    if isinstance(value, str):
        if string_contains_secrets(value):
            raise SecretsNotAllowedError("value contains secrets")
        return False
    if value is None or isinstance(value, bool):
        return False
    if isinstance(value, int):
        return not _I64_MIN <= value <= _U64_MAX
    if isinstance(value, float):
        return True
    if isinstance(value, dict):
        seen_float = False
        for k, v in value.items():
            if not isinstance(k, str):
                raise CanonicalJsonError(f"object key is not a string: {k!r}")
            if string_contains_secrets(k):
                raise SecretsNotAllowedError("value contains secrets")
            seen_float = _check(v) or seen_float
        return seen_float
    if isinstance(value, list | tuple):
        seen_float = False
        for v in value:
            seen_float = _check(v) or seen_float
        return seen_float
    raise CanonicalJsonError(f"not a JSON value: {type(value).__name__}")


def canonical_json_bytes(value: Any) -> bytes:
    """Canonical UTF-8 bytes of a JSON value.

    Raises ``SecretsNotAllowedError`` if any string (keys included) holds a secret, else
    ``FloatNotAllowedError`` for a float or an integer outside i64/u64, else
    ``CanonicalJsonError`` for anything that is not JSON.
    """
    if _check(value):
        raise FloatNotAllowedError("floats are not allowed in canonical JSON")
    try:
        return _encoder.encode(value).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise CanonicalJsonError("string is not valid unicode (lone surrogate)") from exc


def artifact_id_for_bytes(data: bytes) -> ArtifactId:
    """Lowercase hex SHA-256 of ``data``; the artifact kind never enters the id."""
    return ArtifactId(hashlib.sha256(data).hexdigest())


def artifact_id_for_json(value: Any) -> ArtifactId:
    return artifact_id_for_bytes(canonical_json_bytes(value))


def redact_error_info(info: ErrorInfo) -> ErrorInfo:
    """Drop ``details``; replace a secret-bearing message by ``error details redacted``."""
    message = REDACTED_MESSAGE if string_contains_secrets(info.message) else info.message
    return ErrorInfo(info.code, info.category, info.retryable, message, None)
