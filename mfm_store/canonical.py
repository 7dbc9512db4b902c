"""Canonical JSON, content ids and the secret policy (SPEC §4).

Canonical bytes match the Rust crate's: no whitespace, object keys sorted by code point, strings
escaped as ``json.dumps(ensure_ascii=False)`` does, integers within i64/u64, no floats, at most
:data:`MAX_JSON_DEPTH` nested arrays/objects (serde_json's recursion limit). The secret scan runs
before the float check, so a secret always wins. :func:`parse_json` reads JSON text as the
crate's serde_json does.
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
    "MAX_JSON_DEPTH",
    "REDACTED_MESSAGE",
    "artifact_id_for_bytes",
    "artifact_id_for_json",
    "canonical_json_bytes",
    "json_contains_secrets",
    "json_depth_error",
    "parse_json",
    "redact_error_info",
    "respell_floats",
    "serde_json_text",
    "sorted_json",
    "string_contains_secrets",
]

REDACTED_MESSAGE = "error details redacted"
# serde_json refuses the 128th nested array/object of a document (its recursion limit), so a
# document may nest 127 deep.
MAX_JSON_DEPTH = 127

# The policy's pieces are module-level names without an underscore: the store's rules
# (``_rules``) search with them too. They are not part of the package's API.
SECRET_NEEDLES = (
    "password", "passphrase", "mnemonic", "private_key", "privatekey", "seed phrase",
    "seed_phrase", "seedphrase", "api_key", "apikey", "x-api-key", "x_api_key", "access_key",
    "accesskey", "secret_key", "secretkey", "aws_access_key_id", "aws_secret_access_key",
    "access_token", "refresh_token", "id_token", "authorization", "bearer ",
)
# Only A-Z is folded: str.lower() would fold e.g. KELVIN SIGN to "k" and differ from Rust.
ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_I64_MIN = -(2**63)
_U64_MAX = 2**64 - 1
_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True,
                            allow_nan=False)


def _trie_pattern(words: tuple[str, ...]) -> str:
    """One regex matching any of ``words``, written as a trie (``pass(?:phrase|word)``, ...):
    the search then decides each position on its first character instead of trying every
    needle there (1.0 against 1.75 us on a 100-byte event body)."""
    trie: dict[str, Any] = {}
    for word in words:
        node = trie
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}

    def emit(node: dict[str, Any]) -> str:
        alts = [re.escape(ch) + emit(sub) for ch, sub in sorted(node.items()) if ch]
        if not alts:
            return ""
        if len(alts) == 1 and "" not in node:
            return alts[0]
        group = "(?:" + "|".join(alts) + ")"
        return group + "?" if "" in node else group

    return emit(trie)


# Any needle; search the A-Z-folded text (``str.translate(ASCII_LOWER)``, or ``lower()`` of
# ASCII text, which folds the same).
SECRET_RE = re.compile(_trie_pattern(SECRET_NEEDLES))
MNEMONIC_MIN_LEN = 12 + 11  # twelve one-letter words and the spaces between them
# str.split() splits on these four, Rust's split_whitespace (Unicode White_Space) does not; every
# other separator is the same for both.
_NOT_RUST_WHITESPACE = "\x1c\x1d\x1e\x1f"


def looks_like_mnemonic(s: str) -> bool:
    """True if ``s`` splits on whitespace into 12-24 words of ASCII lowercase letters (as
    Rust's ``split_whitespace`` splits it)."""
    if len(s) < MNEMONIC_MIN_LEN:
        return False
    words = s.split()
    if not 12 <= len(words) <= 24:
        return False
    if not all(w.isascii() and w.isalpha() and w.islower() for w in words):
        return False
    # For Rust one of these would sit inside a word, which then is not all letters.
    return not any(c in s for c in _NOT_RUST_WHITESPACE)


# Strings found clean, remembered: JSON keys, event names and many values recur (a fact
# payload's keys cost 4 us of the 6 us scan without it: canonical_json_bytes, issue 14). A
# verdict depends on the string only. Bounded: short strings, emptied when full.
CLEAN_STRINGS: dict[str, None] = {}
_CLEAN_MAX_LEN = 128
_CLEAN_MAX = 4096


def string_contains_secrets(s: str) -> bool:
    """True if ``s`` names a credential or looks like a 12-24 word mnemonic."""
    if s in CLEAN_STRINGS:
        return False
    if SECRET_RE.search(s.translate(ASCII_LOWER)) is not None or looks_like_mnemonic(s):
        return True
    remember_clean(s)
    return False


def remember_clean(s: str) -> None:
    """Record that ``s`` holds no secret (the caller has checked it with the full policy)."""
    if len(s) <= _CLEAN_MAX_LEN:
        if len(CLEAN_STRINGS) >= _CLEAN_MAX:
            CLEAN_STRINGS.clear()
        CLEAN_STRINGS[str.__str__(s)] = None  # a plain copy of a subclass (ArtifactId)


def json_contains_secrets(value: Any) -> bool:
    """Scan a JSON value recursively, object keys included (any depth)."""
    try:
        return _contains_secrets(value)
    except RecursionError:
        return _contains_secrets_deep(value)


def _contains_secrets_deep(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if string_contains_secrets(item):
                return True
        elif isinstance(item, dict):
            for k, v in item.items():
                if isinstance(k, str) and string_contains_secrets(k):
                    return True
                stack.append(v)
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return False


def _contains_secrets(value: Any) -> bool:
    if isinstance(value, str):
        return string_contains_secrets(value)
    if isinstance(value, dict):
        return any(
            (isinstance(k, str) and string_contains_secrets(k)) or _contains_secrets(v)
            for k, v in value.items()
        )
    if isinstance(value, list | tuple):
        return any(_contains_secrets(v) for v in value)
    return False


def json_depth_error(where: str, limit: int) -> CanonicalJsonError:
    return CanonicalJsonError(f"{where} is nested deeper than {limit} arrays/objects, which "
                              "the Rust crate's serde_json cannot read")


def _check(value: Any, room: int = MAX_JSON_DEPTH) -> bool:
    """Secret-scan and type-check in one walk; returns True if a float was seen.

    ``room``: how many more nested arrays/objects are allowed. Plain values inside an object
    or array are handled in its loop, and strings already found clean are not searched again
    (one call per value and the search made the walk cost 1.5x the encoding: issue 14).
    """
    t = type(value)
    if t is dict:
        if room <= 0:
            raise json_depth_error("value", MAX_JSON_DEPTH)
        seen_float = False
        for k, v in value.items():
            if k not in CLEAN_STRINGS:
                if not isinstance(k, str):
                    raise CanonicalJsonError(f"object key is not a string: {k!r}")
                if string_contains_secrets(k):
                    raise SecretsNotAllowedError("value contains secrets")
            tv = type(v)
            if tv is str:
                if v not in CLEAN_STRINGS and string_contains_secrets(v):
                    raise SecretsNotAllowedError("value contains secrets")
            elif tv is int:
                if not _I64_MIN <= v <= _U64_MAX:
                    seen_float = True
            elif not (tv is bool or v is None) and _check(v, room - 1):
                seen_float = True
        return seen_float
    if t is list or t is tuple:
        if room <= 0:
            raise json_depth_error("value", MAX_JSON_DEPTH)
        seen_float = False
        for v in value:
            tv = type(v)
            if tv is str:
                if v not in CLEAN_STRINGS and string_contains_secrets(v):
                    raise SecretsNotAllowedError("value contains secrets")
            elif tv is int:
                if not _I64_MIN <= v <= _U64_MAX:
                    seen_float = True
            elif not (tv is bool or v is None) and _check(v, room - 1):
                seen_float = True
        return seen_float
    return _check_other(value, room)


def _check_other(value: Any, room: int) -> bool:
    """:func:`_check` of anything but a plain dict, list or tuple (scalars, subclasses)."""
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
    if room <= 0 and isinstance(value, dict | list | tuple):
        raise json_depth_error("value", MAX_JSON_DEPTH)
    if isinstance(value, dict):
        seen_float = False
        for k, v in value.items():
            if not isinstance(k, str):
                raise CanonicalJsonError(f"object key is not a string: {k!r}")
            if string_contains_secrets(k):
                raise SecretsNotAllowedError("value contains secrets")
            seen_float = _check(v, room - 1) or seen_float
        return seen_float
    if isinstance(value, list | tuple):
        seen_float = False
        for v in value:
            seen_float = _check(v, room - 1) or seen_float
        return seen_float
    raise CanonicalJsonError(f"not a JSON value: {type(value).__name__}")


def canonical_json_bytes(value: Any) -> bytes:
    """Canonical UTF-8 bytes of a JSON value.

    Raises ``SecretsNotAllowedError`` if any string (keys included) holds a secret, else
    ``FloatNotAllowedError`` for a float or an integer outside i64/u64, else
    ``CanonicalJsonError`` for anything that is not JSON or nests deeper than
    :data:`MAX_JSON_DEPTH` (met during the walk, so it may win over a deeper secret).
    """
    if _check(value):
        raise FloatNotAllowedError("floats are not allowed in canonical JSON")
    try:
        return _encoder.encode(value).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise CanonicalJsonError("string is not valid unicode (lone surrogate)") from exc


def _reject_constant(name: str) -> Any:
    raise CanonicalJsonError(f"{name} is not JSON")


def _serde_int(text: str) -> int | float:
    # serde_json reads an integer literal as u64 or i64 if it fits, else as f64; and "-0" as
    # the float -0.0 (an i64 cannot hold a negative zero).
    value = int(text)
    if _I64_MIN <= value <= _U64_MAX:
        if value == 0 and text[0] == "-":
            return -0.0
        return value
    return _serde_float(text)


def _serde_float(text: str) -> float:
    value = float(text)
    if value in (_INF, -_INF):
        raise CanonicalJsonError(f"number out of range: {text[:40]}")
    return value


_INF = float("inf")
_SURROGATE_RE = re.compile("[\ud800-\udfff]")


def _check_parsed(value: Any, room: int) -> None:
    if type(value) is str:
        if _SURROGATE_RE.search(value):
            raise CanonicalJsonError("string holds a lone surrogate (\\ud800-\\udfff escape)")
    elif type(value) is dict:
        if room <= 0:
            raise json_depth_error("JSON text", MAX_JSON_DEPTH)
        for k, v in value.items():
            _check_parsed(k, room)
            _check_parsed(v, room - 1)
    elif type(value) is list:
        if room <= 0:
            raise json_depth_error("JSON text", MAX_JSON_DEPTH)
        for v in value:
            _check_parsed(v, room - 1)


def parse_json(data: str | bytes) -> Any:
    """Parse one JSON document as the crate's serde_json reads it.

    Differences from ``json.loads``: bytes must be UTF-8 (no BOM, no UTF-16); ``NaN``,
    ``Infinity`` and numbers beyond f64 are refused; ``-0`` is the float ``-0.0``; an integer
    outside i64/u64 is a float; escapes of lone surrogates are refused; nesting deeper than
    :data:`MAX_JSON_DEPTH` is refused. Raises ``CanonicalJsonError`` (a ``ValueError``).
    """
    from_bytes = not isinstance(data, str)
    try:
        text = data if isinstance(data, str) else bytes(data).decode("utf-8")
        value = json.loads(text, parse_constant=_reject_constant, parse_int=_serde_int,
                           parse_float=_serde_float)
    except RecursionError:
        raise json_depth_error("JSON text", MAX_JSON_DEPTH) from None
    except CanonicalJsonError:
        raise
    except (ValueError, TypeError) as exc:
        raise CanonicalJsonError(f"not JSON: {exc}") from None
    # The walk is needed only if the text could nest too deep or hold a surrogate (escaped,
    # or raw in a str: strict UTF-8 decoding never yields one).
    if (text.count("[") + text.count("{") > MAX_JSON_DEPTH or "\\u" in text
            or (not from_bytes and _SURROGATE_RE.search(text))):
        _check_parsed(value, MAX_JSON_DEPTH)
    return value


# Free-form JSON as the crate writes it (serde_json::Value: a BTreeMap, so object keys in UTF-8
# byte order, which is code point order; floats spelled by ryu). Python's repr picks the same
# shortest digits; only its exponent notation differs: "1e+16" / "1e-07" / "1.5e-05" where ryu
# writes "1e16" / "1e-7" / "0.000015" (ryu keeps fixed notation down to 1e-5, Python to 1e-4).
_sorted_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True,
                                   allow_nan=False)
_plain_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
# A JSON string token, or a number in exponent notation (only floats have one).
_EXPONENT_RE = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|(-?[0-9]+(?:\.[0-9]+)?)e([-+][0-9]+)')


def _ryu_exponent(m: re.Match[str]) -> str:
    mantissa = m.group(1)
    if mantissa is None:  # a string: unchanged
        return m.group(0)
    exponent = int(m.group(2))
    if exponent == -5:
        sign = "-" if mantissa[0] == "-" else ""
        return f"{sign}0.0000{mantissa.lstrip('-').replace('.', '')}"
    return f"{mantissa}e{exponent}"


def respell_floats(text: str) -> str:
    """Rewrite the floats of compact JSON text written by Python's ``json`` as ryu spells
    them; everything else, strings included, is left as it is."""
    if "e+" in text or "e-" in text:
        return _EXPONENT_RE.sub(_ryu_exponent, text)
    return text


def serde_json_text(value: Any, *, sort_keys: bool = True) -> str:
    """The JSON text serde_json writes for a free-form value: compact, object keys sorted,
    floats spelled as ryu spells them. ``sort_keys=False`` keeps the dicts' order (for values
    whose order is already the crate's, such as :meth:`EventEnvelope.to_json` output).

    Raises ``CanonicalJsonError`` for a value that is not JSON or nests too deeply for Python.
    """
    try:
        text = (_sorted_encoder if sort_keys else _plain_encoder).encode(value)
    except RecursionError:
        raise json_depth_error("value", MAX_JSON_DEPTH) from None
    except (TypeError, ValueError) as exc:
        raise CanonicalJsonError(f"not a JSON value: {exc}") from None
    return respell_floats(text)


def sorted_json(value: Any) -> Any:
    """A copy of a JSON value whose objects list their keys in sorted order (as serde_json
    writes a ``Value``). Values that are not JSON are copied as they are."""
    try:
        return _sorted_copy(value)
    except RecursionError:
        raise json_depth_error("value", MAX_JSON_DEPTH) from None


def _sorted_copy(value: Any) -> Any:
    t = type(value)
    if t is dict:
        try:
            keys = sorted(value)
        except TypeError:  # keys that are not all text: not JSON; leave the order
            keys = list(value)
        return {k: _sorted_copy(value[k]) for k in keys}
    if t is list:
        return [_sorted_copy(v) for v in value]
    return value


def content_id(data: bytes) -> str:
    """The text of ``data``'s artifact id: lowercase hex SHA-256 (the kind never enters it).

    The one place ids are computed: hot paths take the text, the others
    :func:`artifact_id_for_bytes`."""
    return hashlib.sha256(data).hexdigest()


def artifact_id_for_bytes(data: bytes) -> ArtifactId:
    """Lowercase hex SHA-256 of ``data``; the artifact kind never enters the id."""
    return ArtifactId(content_id(data))


def artifact_id_for_json(value: Any) -> ArtifactId:
    return artifact_id_for_bytes(canonical_json_bytes(value))


def redact_error_info(info: ErrorInfo) -> ErrorInfo:
    """Drop ``details``; replace a secret-bearing message by ``error details redacted``."""
    message = REDACTED_MESSAGE if string_contains_secrets(info.message) else info.message
    return ErrorInfo(info.code, info.category, info.retryable, message, None)
