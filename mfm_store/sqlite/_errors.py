"""Translation of sqlite3 exceptions into mfm_store's error tree (no sqlite3 error escapes)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from ..errors import (
    CODE_BUSY,
    CODE_READ_ONLY,
    CODE_STORAGE,
    CorruptionError,
    MfmError,
    StorageError,
)

_CORRUPT = ("malformed", "not a database", "corrupt")


def is_busy(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and (
        "locked" in str(exc) or "busy" in str(exc))


def translate(exc: BaseException, where: str) -> BaseException:
    """Our error for ``exc`` (returned unchanged if it is already ours or not from sqlite3)."""
    if isinstance(exc, MfmError) or not isinstance(exc, sqlite3.Error):
        return exc
    text = str(exc)
    if any(word in text for word in _CORRUPT):
        err: StorageError = CorruptionError(f"{where}: database file is corrupt ({text})")
    elif is_busy(exc):
        err = StorageError(f"{where}: timed out waiting for another writer ({text})",
                           code=CODE_BUSY, retryable=True)
    elif "readonly" in text or "read-only" in text:
        err = StorageError(f"{where}: file is read-only ({text})", code=CODE_READ_ONLY)
    else:
        err = StorageError(f"{where}: {text}", code=CODE_STORAGE)
    err.__cause__ = exc
    return err


@contextmanager
def map_errors(where: str) -> Iterator[None]:
    """Re-raise sqlite3 errors as ``StorageError`` subclasses, ``from`` the original."""
    try:
        yield
    except sqlite3.Error as exc:
        raise translate(exc, where) from exc
