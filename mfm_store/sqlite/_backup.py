"""``backup()``: a consistent copy of a live file, laid out for reading runs back.

The live file keeps events in append order, which is what makes concurrent appends to many runs
cheap, but leaves a run's events spread over the pages of every run written at the same time.
The backup is built table by table from one read snapshot of the source, events in
``(run_pk, seq)`` order, so each run's events lie together and a replay of the copy reads few
pages. It is written under a temporary name beside the destination, synced, and renamed into
place: a destination path either does not exist or holds a complete copy.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from ..errors import StorageError
from . import _queries as q
from ._errors import map_errors
from ._schema import check_and_migrate


def write_backup(source_uri: str, source: str, target: Path) -> None:
    """Copy the store at ``source_uri`` (read in one snapshot) to the new file ``target``.

    The copy uses a rollback journal (no ``-wal``), so it is one self-contained file. Raises
    ``StorageError`` if ``target`` exists; on any failure nothing is left at ``target``.
    """
    if target.exists():
        raise StorageError(f"{target}: backup destination already exists")
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    partial.unlink(missing_ok=True)
    try:
        with map_errors(f"backup of {source} to {target}"):
            conn = sqlite3.connect(partial.resolve().as_uri(), uri=True, isolation_level=None)
            try:
                check_and_migrate(conn, partial, read_only=False)
                # A fresh file nobody else sees: no journal, one sync at the end.
                conn.execute("PRAGMA journal_mode = OFF")
                conn.execute("PRAGMA synchronous = OFF")
                conn.execute(q.BACKUP_ATTACH, (source_uri,))
                conn.execute("BEGIN IMMEDIATE")
                for statement in q.BACKUP_COPY:
                    conn.execute(statement)
                conn.execute("COMMIT")
                conn.execute(q.BACKUP_DETACH)
            finally:
                conn.close()
        _fsync(partial)
        if target.exists():
            raise StorageError(f"{target}: backup destination already exists")
        os.replace(partial, target)
        _fsync(target.parent, directory=True)
    finally:
        partial.unlink(missing_ok=True)


def _fsync(path: Path, *, directory: bool = False) -> None:
    if directory and not hasattr(os, "O_DIRECTORY"):
        return  # Windows: a rename is made durable by the file system, not by the caller
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
