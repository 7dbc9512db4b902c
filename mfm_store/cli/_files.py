"""Files the commands write and read.

Outputs (``export -o``, ``artifact -o``) never replace an existing file unless forced, never
touch the database being read (nor its ``-wal``/``-shm``/``-journal``), and appear only when
complete: the bytes go to a temporary file in the destination's folder (unnamed where Linux
allows it, so a killed process leaves nothing at all), are fsynced, then linked or renamed
into place. A character device or a FIFO (``/dev/stdout``, a pipe) is written to directly.

Inputs (``import FILE``) are checked for what they are before anything is read in bulk: a
directory, an empty file or ``/dev/null``, a stream without an export header (``/dev/zero``)
are refused with a message that says so.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from ..errors import (
    CODE_DESTINATION_EXISTS,
    CODE_DESTINATION_IS_DATABASE,
    CODE_EXPORT_NOT_FOUND,
    CODE_INVALID_DESTINATION,
)
from ..transfer import CODE_EXPORT_MALFORMED, EXPORT_FORMAT
from ._common import EXIT_FILE, EXIT_PROBLEM, CliError, file_kind

__all__ = [
    "CODE_DESTINATION_IS_DATABASE",
    "CODE_EXPORT_NOT_FOUND",
    "CODE_INVALID_DESTINATION",
    "check_new_file",
    "check_not_database",
    "check_stdout_is_not",
    "database_files",
    "discard_database",
    "new_file_target",
    "open_input",
    "output_file",
    "place_new_file",
    "sibling_name",
]


# An export's first line is about 45 bytes; this bounds what is read from an endless stream
# (``/dev/zero``) before it is refused.
_HEADER_LIMIT = 4096
_SIDE_FILES = ("-wal", "-shm", "-journal")


def database_files(db: Path) -> list[Path]:
    """The database file and the files SQLite keeps beside it."""
    return [db, *(db.with_name(db.name + suffix) for suffix in _SIDE_FILES)]


def _same(a: Path, b: Path) -> bool:
    if Path(os.path.realpath(a)) == Path(os.path.realpath(b)):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def check_not_database(dest: Path, db: Path) -> None:
    """Refuse ``dest`` if it is the database or one of its side files (by name or by inode),
    whatever ``--force`` says."""
    if any(_same(dest, f) for f in database_files(db)):
        raise CliError(f"{dest}: is the database {db} (or one of its -wal/-shm files); "
                       "write to another path", EXIT_PROBLEM, CODE_DESTINATION_IS_DATABASE)


def check_stdout_is_not(db: Path) -> None:
    """Refuse to write to standard output when it is the database or one of its side files
    (``mfm-store export --db runs.db >> runs.db``)."""
    try:
        out = os.fstat(sys.stdout.fileno())
    except (OSError, ValueError):
        return
    if not stat.S_ISREG(out.st_mode):
        return
    for f in database_files(db):
        try:
            st = os.stat(f)
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == (out.st_dev, out.st_ino):
            raise CliError(f"standard output is the database {db} (or one of its -wal/-shm "
                           "files); write to another path", EXIT_PROBLEM,
                           CODE_DESTINATION_IS_DATABASE)


def sibling_name(target: Path, suffix: str) -> Path:
    """A fresh hidden name in ``target``'s folder."""
    return target.with_name(f".{target.name}.{secrets.token_hex(6)}{suffix}")


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some systems cannot fsync a folder; the rename is still atomic
    finally:
        os.close(fd)


def place_new_file(temp: Path, target: Path, *, force: bool) -> None:
    """Move the complete file ``temp`` to ``target`` (same folder). Without ``force`` the
    move fails with ``destination_exists`` if ``target`` appeared meanwhile: a hard link never
    replaces a file."""
    if force:
        os.replace(temp, target)
    else:
        try:
            os.link(temp, target)
        except FileExistsError:
            raise CliError(f"{target}: already exists (another process created it); "
                           "nothing was replaced", EXIT_PROBLEM, CODE_DESTINATION_EXISTS) from None
        except OSError:  # a file system without hard links
            if os.path.lexists(target):
                raise CliError(f"{target}: already exists; nothing was replaced",
                               EXIT_PROBLEM, CODE_DESTINATION_EXISTS) from None
            os.replace(temp, target)
        else:
            os.unlink(temp)
    _fsync_folder(target.parent)


def new_file_target(name: str | Path) -> Path:
    """Where a new file called ``name`` goes (symlinks resolved). Refuses (exit 1,
    ``invalid_destination``) a name ending in a separator and a folder that does not exist."""
    raw = os.fspath(name)
    if raw.endswith(("/", os.sep)):
        raise CliError(f"{raw}: names a folder; give a file path", EXIT_PROBLEM,
                       CODE_INVALID_DESTINATION)
    target = Path(os.path.realpath(raw))
    if not target.parent.is_dir():
        raise CliError(f"{raw}: the folder {Path(raw).parent} does not exist", EXIT_PROBLEM,
                       CODE_INVALID_DESTINATION)
    return target


def check_new_file(name: str | Path) -> Path:
    """``name`` must not exist (``destination_exists``; ``invalid_destination`` for a folder)
    and must name a file in a folder that exists; returns where it goes."""
    if os.path.isdir(name):
        raise CliError(f"{name}: is a directory; give a file path", EXIT_PROBLEM,
                       CODE_INVALID_DESTINATION)
    if os.path.lexists(name):
        raise CliError(f"{name}: already exists; nothing was replaced", EXIT_PROBLEM,
                       CODE_DESTINATION_EXISTS)
    return new_file_target(name)


def _resolve_destination(name: str | Path, db: Path | None,
                         force: bool) -> tuple[Path, bool]:
    """``(path to write, direct)``: direct for a device or a FIFO, else a new regular file."""
    dest = Path(name)
    if db is not None:
        check_not_database(dest, db)
    try:
        mode = os.stat(dest).st_mode
    except FileNotFoundError:
        return new_file_target(name), False
    if stat.S_ISCHR(mode) or stat.S_ISFIFO(mode):
        return dest, True  # by its own name: /dev/stdout resolves to a pipe's pseudo-path
    target = Path(os.path.realpath(dest))
    if not stat.S_ISREG(mode):
        raise CliError(f"{dest}: is {file_kind(mode)}; give a file path", EXIT_PROBLEM,
                       CODE_INVALID_DESTINATION)
    if not force:
        raise CliError(f"{dest}: already exists; pass --force to replace it", EXIT_PROBLEM,
                       CODE_DESTINATION_EXISTS)
    return target, False


def _unnamed_temp(folder: Path) -> int | None:
    """A file with no name in ``folder`` (Linux ``O_TMPFILE``), or None where unsupported."""
    flag = getattr(os, "O_TMPFILE", None)
    if flag is None or not os.path.isdir("/proc/self/fd"):
        return None
    try:
        return os.open(folder, flag | os.O_RDWR, 0o666)
    except OSError:
        return None


def _name_unnamed(stream: IO[bytes], target: Path) -> Path:
    """A name in ``target``'s folder for the complete unnamed file behind ``stream``."""
    name = sibling_name(target, ".partial")
    folder = os.open(name.parent, os.O_RDONLY)
    try:
        # With a folder fd, os.link calls linkat(AT_SYMLINK_FOLLOW), which links the file
        # behind /proc/self/fd/N; a plain link() would try to link the magic link itself.
        os.link(f"/proc/self/fd/{stream.fileno()}", name.name, dst_dir_fd=folder)
        return name
    except OSError:  # linkat refused (some file systems, some security modules): copy
        fd, name = _named_temp(target)
        try:
            with os.fdopen(fd, "wb") as copy:
                os.lseek(stream.fileno(), 0, os.SEEK_SET)
                while chunk := os.read(stream.fileno(), 1 << 20):
                    copy.write(chunk)
                copy.flush()
                os.fsync(copy.fileno())
        except BaseException:
            name.unlink(missing_ok=True)
            raise
        return name
    finally:
        os.close(folder)


def _named_temp(target: Path) -> tuple[int, Path]:
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.",
                                suffix=".partial")
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)  # as a file opened for writing would get, not mkstemp's 0600
    return fd, Path(name)


@contextlib.contextmanager
def output_file(dest: str | Path, *, force: bool,
                database: Path | None) -> Iterator[IO[bytes]]:
    """A binary stream whose bytes appear at ``dest`` only once the block completes.

    Refuses (``CliError``, exit 1) the database or its side files (``destination_is_database``),
    an existing file unless ``force`` (``destination_exists``), a directory or a missing folder
    (``invalid_destination``). If the block raises, or the process dies, ``dest`` is untouched.
    """
    target, direct = _resolve_destination(dest, database, force)
    if direct:
        with open(target, "wb") as stream:
            yield stream
        return
    fd = _unnamed_temp(target.parent)
    temp: Path | None = None
    if fd is None:
        fd, temp = _named_temp(target)
    try:
        with os.fdopen(fd, "wb") as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
            if temp is None:
                temp = _name_unnamed(stream, target)
        place_new_file(temp, target, force=force)
    finally:
        if temp is not None:
            temp.unlink(missing_ok=True)


def discard_database(path: Path) -> None:
    """Remove a database file this command created, with its side files."""
    for f in database_files(path):
        f.unlink(missing_ok=True)


def _refuse_input(name: str, what: str) -> CliError:
    return CliError(f"{name}: {what}, not an mfm_store export", EXIT_FILE, CODE_EXPORT_MALFORMED)


def _check_header(first: bytes, name: str) -> None:
    if not first:
        raise _refuse_input(name, "empty input")
    try:
        head = json.loads(first)
    except (ValueError, RecursionError):
        head = None
    if not isinstance(head, dict) or head.get("format") != EXPORT_FORMAT:
        shown = "no export header" if first.endswith(b"\n") else \
            f"no export header in its first {len(first)} bytes"
        raise _refuse_input(name, shown)


def _spool(stream: IO[bytes], first: bytes) -> IO[bytes]:
    """The rest of a stream copied to a temporary file: an import reads its input twice."""
    spool = tempfile.TemporaryFile()  # noqa: SIM115 (the caller closes it)
    spool.write(first)
    shutil.copyfileobj(stream, spool)
    spool.seek(0)
    return spool


def open_input(name: str) -> IO[bytes]:
    """The export to import, checked for what it is: ``-`` is standard input; a device or a
    FIFO is read as a stream. Refuses (exit 3) a missing path (``export_not_found``), a
    directory, an empty input or one that does not start with an export header
    (``export_malformed``)."""
    if name == "-":
        first = sys.stdin.buffer.readline(_HEADER_LIMIT)
        _check_header(first, "standard input")
        return _spool(sys.stdin.buffer, first)
    try:
        mode = os.stat(name).st_mode
    except FileNotFoundError:
        raise CliError(f"{name}: no such file", EXIT_FILE, CODE_EXPORT_NOT_FOUND) from None
    if stat.S_ISDIR(mode):
        raise _refuse_input(name, "a directory")
    source = open(name, "rb")  # noqa: SIM115 (returned; the caller closes it)
    try:
        what = name if stat.S_ISREG(mode) else f"{name} ({file_kind(mode)})"
        first = source.readline(_HEADER_LIMIT)
        _check_header(first, what)
        if stat.S_ISREG(mode):
            source.seek(0)
            return source
        with source:
            return _spool(source, first)
    except BaseException:
        source.close()
        raise
