"""Recognising, creating and migrating mfm_store files (SPEC §5.2).

The numbered SQL files of ``schema/`` are the source of truth; a wheel ships them as
``mfm_store/_schema``. A file records its version in ``PRAGMA user_version`` and carries
``PRAGMA application_id`` = 0x4D464D53 ('MFMS').
"""

from __future__ import annotations

import functools
import sqlite3
import stat
from pathlib import Path

from .. import _migrations
from ..errors import CODE_NOT_A_DATABASE, CODE_SCHEMA_TOO_NEW, CorruptionError, StorageError
from . import _checksums
from ._errors import map_errors

APPLICATION_ID = 0x4D464D53
_SQLITE_MAGIC = b"SQLite format 3\x00"


def migrations() -> list[tuple[int, str]]:
    """``(version, sql)`` for every numbered file of this backend, ascending."""
    return _migrations.migrations("")


LATEST_VERSION = len(migrations())
# The oldest version whose files the store's queries read as they are: a read-only open (which
# never migrates) accepts any version from here to LATEST_VERSION.
READABLE_SINCE = 1


def statements(script: str) -> list[str]:
    """Split a SQL script into complete statements (triggers keep their inner semicolons)."""
    out, current = [], ""
    for line in script.splitlines(keepends=True):
        if not current and (not line.strip() or line.lstrip().startswith("--")):
            continue
        current += line
        if sqlite3.complete_statement(current):
            out.append(current.strip())
            current = ""
    if current.strip():
        raise StorageError(f"incomplete SQL statement in schema: {current[:60]!r}")
    return out


def inspect_file(path: Path) -> tuple[bool, bool]:
    """Check the header of an existing file before SQLite sees it.

    Returns ``(is_empty, is_wal)``. Raises ``StorageError`` (code ``not_an_mfm_store``) for a
    file that is not SQLite, ``CorruptionError`` for one shorter than its header says.
    """
    info = path.stat()
    if not stat.S_ISREG(info.st_mode):
        raise StorageError(f"{path}: not a regular file, so not an mfm_store database",
                           code=CODE_NOT_A_DATABASE)
    size = info.st_size
    if size == 0:
        return True, False
    with path.open("rb") as f:
        header = f.read(100)
    if len(header) < 100 or not header.startswith(_SQLITE_MAGIC):
        raise StorageError(f"{path}: not an mfm_store database (not an SQLite file)",
                           code=CODE_NOT_A_DATABASE)
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    header_size_valid = header[24:28] == header[92:96]
    wal = Path(f"{path}-wal")
    if header_size_valid and pages * page_size > size and not (wal.exists() and wal.stat().st_size):
        raise CorruptionError(
            f"{path}: file is truncated ({size} bytes; its header says {pages * page_size})")
    return False, header[18] == 2


def check_and_migrate(conn: sqlite3.Connection, path: Path, *, read_only: bool) -> int:
    """Refuse foreign or newer files; bring an older (or new, empty) file to the latest schema.

    Never writes when ``read_only``: an older file is then read as it is if its version is
    at least ``READABLE_SINCE``, else refused. Returns the file's schema version.
    """
    if not read_only:
        _checksums.register(conn)  # the writer's statements use them too
    with map_errors(str(path)):
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        has_tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] > 0
    if app_id != APPLICATION_ID and (app_id != 0 or has_tables or version != 0):
        raise StorageError(
            f"{path}: not an mfm_store database (application_id {app_id:#x}, "
            f"expected {APPLICATION_ID:#x})", code=CODE_NOT_A_DATABASE)
    if version > LATEST_VERSION:
        raise StorageError(
            f"{path}: schema version {version} is newer than this mfm_store supports "
            f"({LATEST_VERSION}); upgrade mfm_store to open it", code=CODE_SCHEMA_TOO_NEW)
    if version == LATEST_VERSION or (read_only and version >= READABLE_SINCE):
        return int(version)
    if read_only:
        # Version 0 here: an empty database (no table, no version), never written by us.
        raise StorageError(f"{path}: the file is empty, not an mfm_store database",
                           code=CODE_NOT_A_DATABASE)
    with map_errors(str(path)):
        if version == 0 and not has_tables:
            # A new file gives the pages prune frees back (see README, "Keeping the file
            # small"); only possible before its first table.
            conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Another process may have migrated while we waited for the lock.
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            for number, script in migrations():
                if number > version:
                    for statement in statements(script):
                        conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {LATEST_VERSION}")
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return LATEST_VERSION


@functools.cache
def expected_objects(version: int) -> tuple[tuple[str, str, str, str | None], ...]:
    """``(type, name, table, sql)`` of every schema object a file of ``version`` holds."""
    conn = sqlite3.connect(":memory:", isolation_level=None)
    try:
        _checksums.register(conn)
        for number, script in migrations():
            if number <= version:
                for statement in statements(script):
                    conn.execute(statement)
        return schema_objects(conn)
    finally:
        conn.close()


def schema_objects(conn: sqlite3.Connection) -> tuple[tuple[str, str, str, str | None], ...]:
    rows = conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master").fetchall()
    return tuple(sorted(rows, key=lambda r: (r[0], r[1])))
