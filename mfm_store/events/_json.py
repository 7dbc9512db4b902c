"""Which Python values are JSON the Rust crate can read back (domain payloads, error
details); see :mod:`mfm_store.events`."""

from __future__ import annotations

import math
from typing import Any

from ._wire import InvalidEventError

_I64_MIN, _U64_MAX = -(2**63), 2**64 - 1
# serde_json reads a line nested at most 127 deep (canonical.MAX_JSON_DEPTH). A domain payload
# sits inside the envelope, the Event enum and the DomainEvent struct; error details inside the
# envelope, Event, KernelEvent, StateFailed, StateError and ErrorInfo.
PAYLOAD_MAX_DEPTH = 127 - 3
DETAILS_MAX_DEPTH = 127 - 6


def check_json_value(value: Any, where: str = "payload",
                     max_depth: int = PAYLOAD_MAX_DEPTH) -> None:
    """Raise :class:`InvalidEventError` unless ``value`` is JSON the Rust crate can read back.

    Allowed: dict with str keys, list, str, bool, None, int within i64/u64, finite float;
    at most ``max_depth`` nested arrays/objects. (Lone surrogates are found when encoding.)
    """
    try:
        check_json(value, max_depth)
    except (_TooDeep, RecursionError):
        raise InvalidEventError(f"{where} is nested deeper than {max_depth} arrays/objects, "
                                "which the Rust crate's serde_json cannot read") from None
    except ValueError as exc:
        raise InvalidEventError(f"{where}: {exc}") from None


class _TooDeep(ValueError):
    pass


def check_json(v: Any, room: int) -> None:
    """:func:`check_json_value` without its message: raises a ``ValueError`` (or
    ``RecursionError``) unless ``v`` is JSON within ``room`` nested arrays/objects. The
    encoder calls it first and :func:`check_json_value` only to explain a refusal."""
    t = type(v)
    if t is str or t is bool or v is None:
        return
    if t is int:
        if not _I64_MIN <= v <= _U64_MAX:
            raise ValueError(f"integer out of i64/u64 range: {v}")
    elif t is dict:
        if room <= 0:
            raise _TooDeep
        for k, item in v.items():
            if type(k) is not str and not isinstance(k, str):
                raise ValueError(f"object key is not a string: {k!r}")
            ti = type(item)
            # Plain scalars are checked here: a call per value would double the cost.
            if not (ti is str or ti is bool or item is None
                    or (ti is int and _I64_MIN <= item <= _U64_MAX)):
                check_json(item, room - 1)
    elif t is list:
        if room <= 0:
            raise _TooDeep
        for item in v:
            ti = type(item)
            if not (ti is str or ti is bool or item is None
                    or (ti is int and _I64_MIN <= item <= _U64_MAX)):
                check_json(item, room - 1)
    elif t is float:
        if not math.isfinite(v):
            raise ValueError(f"non-finite float: {v}")
    elif isinstance(v, str):  # subclasses such as ArtifactId
        return
    elif isinstance(v, int) and not isinstance(v, bool):
        check_json(int(v), room)
    else:
        raise ValueError(f"not a JSON value: {t.__name__}")
