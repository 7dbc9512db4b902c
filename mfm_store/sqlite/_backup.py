"""``backup()``: a consistent copy of a live file, laid out for reading runs back.

The live file keeps events in append order, which is what makes concurrent appends to many runs
cheap, but leaves a run's events spread over the pages of every run written at the same time.
The backup is built table by table from one read snapshot of the source, events in
``(run_pk, seq)`` order, so each run's events lie together and a replay of the copy reads few
pages. It is written under a unique temporary name beside the destination, synced, and then
linked into place: a destination path either does not exist or holds a complete copy, and an
existing file is never replaced.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import tempfile
from pathlib import Path

from ..errors import CODE_DESTINATION_EXISTS, CODE_DISK_FULL, StorageError
from . import _queries as q
from ._errors import map_errors
from ._schema import check_and_migrate


def write_backup(source_uri: str, source: str, dest: Path) -> Path:
    """Copy the store at ``source_uri`` (read in one snapshot) to the new file ``dest``.

    The copy uses a rollback journal (no ``-wal``), so it is one self-contained file. Returns
    its path. Raises ``StorageError`` if ``dest`` exists or its folder does not; on any failure
    nothing is left at ``dest``. A crash while copying may leave a hidden ``.NAME.*.partial``
    file beside it.
    """
    where = f"backup of {source} to {dest}"
    try:
        target = dest.parent.resolve(strict=True) / dest.name
    except OSError as exc:
        raise StorageError(f"{where}: {exc}") from exc
    if target.exists():
        raise StorageError(f"{target}: backup destination already exists",
                           code=CODE_DESTINATION_EXISTS)
    try:
        fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.",
                                    suffix=".partial")
        os.close(fd)
    except OSError as exc:
        raise _os_error(where, exc) from exc
    partial = Path(name)
    try:
        with map_errors(where):
            _copy(source_uri, partial)
        try:
            _fsync(partial)
            _place(partial, target)
            _fsync(target.parent, directory=True)
        except OSError as exc:
            raise _os_error(where, exc) from exc
    finally:
        partial.unlink(missing_ok=True)
    return target


def _copy(source_uri: str, partial: Path) -> None:
    conn = sqlite3.connect(partial.as_uri(), uri=True, isolation_level=None)
    try:
        check_and_migrate(conn, partial, read_only=False)
        # A fresh file nobody else sees: no journal, one sync at the end.
        conn.execute("PRAGMA journal_mode = OFF")
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute(q.BACKUP_ATTACH, (source_uri,))
        # A deferred BEGIN: one read snapshot of the source, the write lock on the copy only
        # (BEGIN IMMEDIATE would also take the source's write lock and stall its writers).
        conn.execute("BEGIN")
        legacy = conn.execute(q.BACKUP_SOURCE_VERSION).fetchone()[0] < 3
        for statement in q.BACKUP_COPY_LEGACY if legacy else q.BACKUP_COPY:
            conn.execute(statement)
        conn.execute("COMMIT")
        conn.execute(q.BACKUP_DETACH)
    finally:
        conn.close()


def _place(partial: Path, target: Path) -> None:
    """Give the finished copy its name, never replacing a file that appeared meanwhile."""
    try:
        os.link(partial, target)
    except FileExistsError:
        raise StorageError(f"{target}: backup destination already exists",
                           code=CODE_DESTINATION_EXISTS) from None
    except OSError:
        # No hard links on this file system: the check and the rename are then two steps.
        if target.exists():
            raise StorageError(f"{target}: backup destination already exists",
                           code=CODE_DESTINATION_EXISTS) from None
        os.replace(partial, target)


def _fsync(path: Path, *, directory: bool = False) -> None:
    if directory and not hasattr(os, "O_DIRECTORY"):
        return  # Windows: a rename is made durable by the file system, not by the caller
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _os_error(where: str, exc: OSError) -> StorageError:
    if exc.errno == errno.ENOSPC:
        return StorageError(f"{where}: disk full ({exc})", code=CODE_DISK_FULL)
    return StorageError(f"{where}: {exc}")
