"""The run context and its snapshots.

The context is a JSON object (string keys, JSON values). Each attempt starts from its base
snapshot, decoded afresh, so a failed attempt's changes vanish with it; after a successful
attempt the whole object is stored as a canonical-JSON artifact (kind ``ContextSnapshot``) and
that artifact's id is recorded in ``StateCompleted``. The empty context ``{}`` has id
``44136fa3...``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any

from .._rules import CheckedBytes
from ..canonical import canonical_json_bytes
from ..errors import CanonicalJsonError, SecretsNotAllowedError
from ..ids import ArtifactId
from ..stores import ArtifactKind, ArtifactStore
from .errors import (
    CODE_CONTEXT_NOT_CANONICAL,
    CODE_CONTEXT_NOT_OBJECT,
    CODE_SECRETS_DETECTED,
    ContextError,
)

__all__ = ["Context", "read_snapshot", "snapshot_bytes", "write_snapshot"]


class Context(MutableMapping[str, Any]):
    """A state's view of the run context: a mutable mapping of string keys to JSON values.

    Values must be canonical JSON when the state completes (no floats, no secrets), else the
    run stops with ``ContextError`` and nothing is written.
    """

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        self._data: dict[str, Any] = dict(data or {})

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        if not isinstance(key, str):
            raise TypeError(f"context keys are strings, got {key!r}")
        self._data[key] = value

    def __delitem__(self, key: str) -> None:
        del self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"Context({self._data!r})"

    def to_dict(self) -> dict[str, Any]:
        """The whole context as a plain dict (a shallow copy)."""
        return dict(self._data)


def snapshot_bytes(value: Mapping[str, Any]) -> bytes:
    """Canonical bytes of a context; raises ``ContextError`` before anything is written.

    Codes: ``secrets_detected`` (a key or value holds a secret), ``context_snapshot_not_canonical``
    (floats, or values that are not JSON).
    """
    try:
        return canonical_json_bytes(dict(value))
    except SecretsNotAllowedError:
        raise ContextError(
            "context snapshot contained secrets (policy forbids persisting secrets)",
            code=CODE_SECRETS_DETECTED) from None
    except (CanonicalJsonError, ValueError, TypeError, RecursionError):
        raise ContextError(
            "context snapshot is not canonical-json-hashable (floats are forbidden)",
            code=CODE_CONTEXT_NOT_CANONICAL) from None


async def write_snapshot(artifacts: ArtifactStore, value: Mapping[str, Any]) -> ArtifactId:
    """Store ``value`` as a ``ContextSnapshot`` artifact and return its id."""
    return await artifacts.put(ArtifactKind.CONTEXT_SNAPSHOT, CheckedBytes(snapshot_bytes(value)))


async def read_snapshot(artifacts: ArtifactStore, snapshot_id: ArtifactId) -> dict[str, Any]:
    """Load a snapshot; store errors propagate; ``ContextError`` (``context_snapshot_not_object``)
    if the bytes are not a JSON object."""
    data = await artifacts.get(snapshot_id)
    try:
        value = json.loads(data)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise ContextError("context snapshot must be a JSON object",
                           code=CODE_CONTEXT_NOT_OBJECT)
    return value
