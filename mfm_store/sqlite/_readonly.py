"""Opening a file read-only without changing anything in its folder (README, "Read-only").

SQLite reads a WAL file through its ``-shm`` index. When no process has the file open, a
read-only connection would create that index (a copy with a ``-wal`` but no ``-shm``) or
rebuild it (a ``-shm`` left by a killed writer): both change the folder. So:

- no ``-wal`` with committed data and nobody using the file: read it as immutable (no
  ``-wal``/``-shm`` is opened or created);
- a ``-wal`` with data and nobody using the file: copy the database and its ``-wal`` into a
  private temporary folder and read the copy (committed data in the ``-wal`` is kept; the
  original folder is not touched);
- the file in use by a live process (this one or another): read through the shared index, as
  SQLite's readers do.
"""

from __future__ import annotations

import os
import shutil
import struct
import sys
import tempfile
import threading
from pathlib import Path

# Byte of the -shm that every connection to a WAL database holds a shared lock on while open
# (SQLite's unix VFS: the "DMS" slot, after the 8 WAL lock bytes starting at 120).
_DMS_OFFSET = 128

_lock = threading.Lock()
_open_here: dict[str, int] = {}


def _key(path: Path) -> str:
    return str(path.resolve())


def hold(path: Path) -> None:
    """Note that this process opened ``path`` (a writable store or a shared reader)."""
    with _lock:
        key = _key(path)
        _open_here[key] = _open_here.get(key, 0) + 1


def release(path: Path) -> None:
    with _lock:
        key = _key(path)
        left = _open_here.get(key, 0) - 1
        if left > 0:
            _open_here[key] = left
        else:
            _open_here.pop(key, None)


def _locked_by_another_process(shm: Path) -> bool:
    """True if another process holds a lock on the -shm's DMS byte (it has the file open)."""
    if sys.platform == "win32":  # pragma: no cover - no fcntl; assume a live writer
        return True
    import fcntl

    try:
        fd = os.open(shm, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        # struct flock: l_type, l_whence, l_start, l_len, l_pid (native layout).
        fmt = "hhqqi" if sys.platform.startswith("linux") else "qqihh"
        if fmt == "hhqqi":
            request = struct.pack(fmt, fcntl.F_WRLCK, os.SEEK_SET, _DMS_OFFSET, 1, 0)
        else:  # BSD / macOS: l_start, l_len, l_pid, l_type, l_whence
            request = struct.pack(fmt, _DMS_OFFSET, 1, 0, fcntl.F_WRLCK, os.SEEK_SET)
        request += b"\0" * 8
        answer = fcntl.fcntl(fd, fcntl.F_GETLK, request)
        l_type = (struct.unpack_from("h", answer, 0)[0] if fmt == "hhqqi"
                  else struct.unpack_from("qqihh", answer, 0)[3])
        return bool(l_type != fcntl.F_UNLCK)
    except OSError:
        return True  # cannot tell: assume a live writer, the cautious choice
    finally:
        os.close(fd)


def in_use(path: Path) -> bool:
    """Whether some connection (this process's or another's) has ``path`` open."""
    with _lock:
        if _open_here.get(_key(path)):
            return True
    return _locked_by_another_process(Path(f"{path}-shm"))


def wal_has_data(path: Path) -> bool:
    wal = Path(f"{path}-wal")
    try:
        return wal.stat().st_size > 0
    except FileNotFoundError:
        return False


def private_copy(path: Path) -> Path:
    """Copy ``path`` and its ``-wal`` into a new temporary folder; returns the copy's path."""
    folder = Path(tempfile.mkdtemp(prefix="mfm-store-read-"))
    try:
        copy = folder / path.name
        shutil.copyfile(path, copy)
        shutil.copyfile(f"{path}-wal", f"{copy}-wal")
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return copy


def discard(copy: Path) -> None:
    shutil.rmtree(copy.parent, ignore_errors=True)
