"""The blocking part of opening a SQLite store: checks, migration, the writer connection,
and the read-only variants (see :mod:`mfm_store.sqlite._readonly`)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Literal

from ..errors import CODE_STORE_NOT_FOUND, StorageError
from . import _readonly
from ._errors import map_errors
from ._schema import check_and_migrate, inspect_file

__all__ = ["SYNCHRONOUS", "Durability", "prepare"]

Durability = Literal["full", "normal"]

SYNCHRONOUS = {"full": "PRAGMA synchronous = FULL", "normal": "PRAGMA synchronous = NORMAL"}


def prepare(path: Path, durability: Durability, read_only: bool, busy_timeout_ms: int
             ) -> tuple[str, sqlite3.Connection | None, int, Path | None]:
    """Blocking part of opening: checks, migration, writer connection.

    Returns the reader URI, the writer connection (None when read-only), the file's schema
    version and the private copy read instead of the file (see ``_readonly``), if any.
    """
    exists = path.exists()
    if read_only and not exists:
        raise StorageError(f"{path}: no such file", code=CODE_STORE_NOT_FOUND)
    is_wal = inspect_file(path)[1] if exists else False
    if read_only:
        return prepare_read_only(path, is_wal)
    with map_errors(str(path)):
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                               timeout=busy_timeout_ms / 1000)
    try:
        version = check_and_migrate(conn, path, read_only=False)
        with map_errors(str(path)):
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute(SYNCHRONOUS[durability])
            conn.execute("PRAGMA busy_timeout = 0")
    except BaseException:
        conn.close()
        raise
    return path.resolve().as_uri(), conn, version, None


def prepare_read_only(path: Path, is_wal: bool
                       ) -> tuple[str, None, int, Path | None]:
    copy = None
    if not is_wal:
        uri = path.resolve().as_uri() + "?mode=ro"
    elif _readonly.in_use(path):
        uri = path.resolve().as_uri() + "?mode=ro"  # through the live writer's index
    elif _readonly.wal_has_data(path):
        copy = _readonly.private_copy(path)
        uri = copy.as_uri() + "?mode=ro"
    else:
        uri = path.resolve().as_uri() + "?mode=ro&immutable=1"
    try:
        with map_errors(str(path)):
            probe = sqlite3.connect(uri, uri=True, isolation_level=None)
        try:
            version = check_and_migrate(probe, path, read_only=True)
        finally:
            probe.close()
    except BaseException:
        if copy is not None:
            _readonly.discard(copy)
        raise
    return uri, None, version, copy
