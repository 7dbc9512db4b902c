"""Identifiers (SPEC §2): validated value types that compare and hash like their text."""

from __future__ import annotations

import re
import uuid
from typing import Self

import attrs

from .errors import IdValidationError

__all__ = ["ArtifactId", "ContextKey", "ErrorCode", "FactKey", "OpId", "OpPath", "RunId", "StateId"]

FactKey = str
ContextKey = str
ErrorCode = str

_OP_ID = r"[a-z][a-z0-9_]{0,62}"
_OP_ID_RE = re.compile(rf"{_OP_ID}\Z")
_OP_PATH_RE = re.compile(rf"{_OP_ID}\.{_OP_ID}\Z")
_STATE_ID_RE = re.compile(rf"{_OP_ID}\.{_OP_ID}\.{_OP_ID}\Z")
_ARTIFACT_ID_RE = re.compile(r"[0-9a-f]{64}\Z")
# The spellings the crate's RunId (the uuid crate's parser) accepts, hex digits of either case:
# 32 digits; 8-4-4-4-12; that form in braces; that form after "urn:uuid:".
_HYPHENATED = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_RUN_ID_RE = re.compile(rf"(?:[0-9a-fA-F]{{32}}|{_HYPHENATED}|\{{{_HYPHENATED}\}}"
                        rf"|urn:uuid:{_HYPHENATED})\Z")
_SEEN_MAX = 4096


@attrs.frozen(order=True)
class RunId:
    """A run's id: a UUID; ``str()`` is the lowercase hyphenated form."""

    value: uuid.UUID
    _text: str = attrs.field(init=False, eq=False, order=False, repr=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "_text", str(self.value))

    @classmethod
    def new(cls) -> RunId:
        return cls(uuid.uuid4())

    @classmethod
    def parse(cls, text: str) -> RunId:
        """Parse the spellings the crate accepts: 32 hex digits, ``8-4-4-4-12`` (also in
        braces or after ``urn:uuid:``), either case. Raises ``IdValidationError``."""
        if isinstance(text, RunId):
            return text
        if not isinstance(text, str) or _RUN_ID_RE.match(text) is None:
            raise IdValidationError("run_id", text)
        return cls(uuid.UUID(text))

    def __str__(self) -> str:
        return self._text


class _ValidatedStr(str):
    _kind = ""
    _pattern: re.Pattern[str]
    # Decoding a stream meets the same ids again and again; remembering the validated
    # instances makes that a dict lookup. Bounded: cleared when full.
    _seen: dict[str, Self]

    def __init_subclass__(cls) -> None:
        cls._seen = {}

    def __new__(cls, value: object) -> Self:
        if type(value) is cls:
            return value
        if isinstance(value, str):
            seen = cls._seen.get(value)
            if seen is not None:
                return seen
        if not isinstance(value, str) or cls._pattern.match(value) is None:
            raise IdValidationError(cls._kind, value)
        made = super().__new__(cls, value)
        if len(cls._seen) >= _SEEN_MAX:
            cls._seen.clear()
        cls._seen[str(value)] = made
        return made


class OpId(_ValidatedStr):
    """``^[a-z][a-z0-9_]{0,62}$``."""

    _kind = "op_id"
    _pattern = _OP_ID_RE


class OpPath(_ValidatedStr):
    """Two OpId segments: ``machine.step``."""

    _kind = "op_path"
    _pattern = _OP_PATH_RE


class StateId(_ValidatedStr):
    """Three OpId segments: ``machine.step.state``."""

    _kind = "state_id"
    _pattern = _STATE_ID_RE


class ArtifactId(_ValidatedStr):
    """64 lowercase hex characters: the SHA-256 of an artifact's bytes."""

    _kind = "artifact_id"
    _pattern = _ARTIFACT_ID_RE
