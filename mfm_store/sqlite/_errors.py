"""Translation of sqlite3 exceptions into mfm_store's error tree (no sqlite3 error escapes).

Errors are classified by their SQLite result code (``sqlite_errorcode``), never by message text.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from ..errors import (
    CODE_BUSY,
    CODE_DISK_FULL,
    CODE_READ_ONLY,
    CODE_STORAGE,
    CorruptionError,
    MfmError,
    StorageError,
)

# Primary result codes (the low byte of an extended code).
_BUSY = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}
_CORRUPT = sqlite3.SQLITE_CORRUPT
_NOT_A_DB = sqlite3.SQLITE_NOTADB
_READONLY = sqlite3.SQLITE_READONLY
_FULL = sqlite3.SQLITE_FULL


def _primary(exc: BaseException) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return None if code is None else int(code) & 0xFF


def is_busy(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.Error) and _primary(exc) in _BUSY


def translate(exc: BaseException, where: str) -> BaseException:
    """Our error for ``exc`` (returned unchanged if it is already ours or not from sqlite3)."""
    if isinstance(exc, UnicodeDecodeError):
        # sqlite3 decodes TEXT columns as UTF-8: a damaged byte in one surfaces here.
        bad = CorruptionError(f"{where}: a stored text is not valid UTF-8 ({exc}); run verify")
        bad.__cause__ = exc
        return bad
    if isinstance(exc, MfmError) or not isinstance(exc, sqlite3.Error):
        return exc
    text = str(exc)
    code = _primary(exc)
    err: StorageError
    if code == _CORRUPT:
        err = CorruptionError(f"{where}: database file is corrupt ({text})")
    elif code == _NOT_A_DB:
        err = CorruptionError(f"{where}: not a database, or a corrupt one ({text})")
    elif code in _BUSY:
        err = StorageError(f"{where}: timed out waiting for another writer ({text})",
                           code=CODE_BUSY, retryable=True)
    elif code == _READONLY:
        err = StorageError(f"{where}: file is read-only ({text})", code=CODE_READ_ONLY)
    elif code == _FULL:
        err = StorageError(f"{where}: disk full, nothing more can be written ({text})",
                           code=CODE_DISK_FULL)
    else:
        err = StorageError(f"{where}: {text}", code=CODE_STORAGE)
    err.__cause__ = exc
    return err


@contextmanager
def map_errors(where: str) -> Iterator[None]:
    """Re-raise sqlite3 errors as ``StorageError`` subclasses, ``from`` the original."""
    try:
        yield
    except (sqlite3.Error, UnicodeDecodeError) as exc:
        raise translate(exc, where) from exc
