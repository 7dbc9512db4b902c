"""Translation of psycopg exceptions into mfm_store's error tree, and DSNs safe to print.

No psycopg exception escapes the store. A lost connection (server restart, dropped socket,
no server) is ``StorageError`` with code ``store_unavailable``, retryable; when it happens
while a write was in flight its outcome is unknown: code ``commit_unknown``, retryable (every
write is safe to re-issue: appends re-check the head, bindings are first-writer-wins, puts are
idempotent). Messages never contain the DSN's password.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import psycopg
import psycopg_pool
from psycopg.conninfo import conninfo_to_dict

from ..errors import (
    CODE_BUSY,
    CODE_COMMIT_UNKNOWN,
    CODE_READ_ONLY,
    CODE_STORAGE,
    CODE_STORE_UNAVAILABLE,
    MfmError,
    StorageError,
)

# SQLSTATE classes and codes meaning "the server is gone or not accepting work now".
_UNAVAILABLE_CLASSES = ("08",)  # connection exception
_UNAVAILABLE_CODES = {"57P01", "57P02", "57P03", "53300"}  # shutdowns, too many connections
_BUSY_CODES = {"40001", "40P01", "55P03", "57014"}  # serialization, deadlock, lock, timeout


def describe_dsn(dsn: str) -> str:
    """``postgresql://user@host:port/dbname`` for messages: never the password."""
    try:
        parts = conninfo_to_dict(dsn)
    except Exception:
        return "postgresql://<unparsable DSN>"
    user = str(parts.get("user") or "")
    host = str(parts.get("host") or "")
    port = parts.get("port")
    db = str(parts.get("dbname") or "")
    where = f"{host}:{port}" if port else host
    return f"postgresql://{user + '@' if user else ''}{where}/{db}"


def is_connection_lost(exc: BaseException) -> bool:
    """True when ``exc`` means the connection or the server is gone (not a statement error)."""
    if isinstance(exc, psycopg_pool.PoolTimeout | psycopg_pool.PoolClosed):
        return True
    if not isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        return False
    state = getattr(exc, "sqlstate", None)
    if state is None:
        return True
    return state[:2] in _UNAVAILABLE_CLASSES or state in _UNAVAILABLE_CODES


def translate(exc: BaseException, where: str, *, writing: bool) -> BaseException:
    """Our error for ``exc`` (returned unchanged if it is ours or not from psycopg)."""
    if isinstance(exc, MfmError) or not isinstance(
            exc, psycopg.Error | psycopg_pool.PoolTimeout | psycopg_pool.PoolClosed):
        return exc
    text = _first_line(exc)
    err: StorageError
    if is_connection_lost(exc):
        if writing and not isinstance(exc, psycopg_pool.PoolTimeout):
            err = StorageError(
                f"{where}: connection lost during a write; it may or may not have been "
                f"committed ({text})", code=CODE_COMMIT_UNKNOWN, retryable=True)
        else:
            err = StorageError(f"{where}: server unavailable ({text})",
                               code=CODE_STORE_UNAVAILABLE, retryable=True)
    elif getattr(exc, "sqlstate", None) == "25006":
        err = StorageError(f"{where}: read-only transaction ({text})", code=CODE_READ_ONLY)
    elif getattr(exc, "sqlstate", None) in _BUSY_CODES:
        err = StorageError(f"{where}: {text}", code=CODE_BUSY, retryable=True)
    else:
        err = StorageError(f"{where}: {text}", code=CODE_STORAGE)
    err.__cause__ = exc
    return err


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


@asynccontextmanager
async def mapped(where: str, *, writing: bool,
                 on_lost: Callable[[], Any] | None = None) -> AsyncIterator[None]:
    """Re-raise psycopg errors as ``StorageError``; call ``on_lost()`` when the server is gone."""
    try:
        yield
    except (psycopg.Error, psycopg_pool.PoolTimeout, psycopg_pool.PoolClosed) as exc:
        if on_lost is not None and is_connection_lost(exc):
            on_lost()
        raise translate(exc, where, writing=writing) from exc
