"""What every command shares: the database option, opening, errors, output, progress.

Exit codes: 0 ok; 1 a problem was found (``verify``) or an operation was refused; 2 usage
error; 3 the database (or another named file) is missing, foreign, corrupt or unreadable;
4 the run or artifact asked for is not in the file; 5 an internal error (a bug).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import stat
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn, Protocol, TextIO, cast

from .._open import is_postgres_target, open_store, redact, shown_target
from .._paging import match_run
from ..errors import (
    CODE_EXPORT_MALFORMED,
    CODE_NOT_A_DATABASE,
    CODE_NOT_FOUND,
    CODE_RUN_NOT_FOUND,
    CODE_SCHEMA_TOO_NEW,
    CODE_STORE_NEEDS_RECOVERY,
    CODE_STORE_NOT_FOUND,
    CODE_STORE_UNAVAILABLE,
    CODE_USAGE,
    CorruptionError,
    MfmError,
)
from ..ids import RunId
from ..sqlite import GcReport, VerifyReport
from ..stores import Store
from ..transfer import ExportableStore, ProgressFn

__all__ = [
    "DB_ENV",
    "EXIT_FILE",
    "EXIT_INTERNAL",
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "EXIT_PROBLEM",
    "EXIT_USAGE",
    "MEMORY",
    "CliError",
    "CliParser",
    "CliStore",
    "Handler",
    "add_command",
    "check_database_file",
    "db_path",
    "db_text",
    "exit_code_for",
    "file_kind",
    "is_path_target",
    "iso_millis",
    "open_existing",
    "open_target",
    "print_json",
    "progress_bar",
    "redact",
    "resolve_run",
    "seq_arg",
    "shorten",
    "shown_target",
    "spinner",
]

DB_ENV = "MFM_STORE_DB"
EXIT_OK, EXIT_PROBLEM, EXIT_USAGE, EXIT_FILE, EXIT_NOT_FOUND, EXIT_INTERNAL = 0, 1, 2, 3, 4, 5
_I64_MAX = 2**63 - 1
_FILE_CODES = {CODE_STORE_NOT_FOUND, CODE_NOT_A_DATABASE, CODE_SCHEMA_TOO_NEW,
               CODE_STORE_NEEDS_RECOVERY, CODE_STORE_UNAVAILABLE, CODE_EXPORT_MALFORMED}
_NOT_FOUND_CODES = {CODE_RUN_NOT_FOUND, CODE_NOT_FOUND}

MEMORY = "memory:"

Handler = Callable[[argparse.Namespace], Awaitable[int]]


class CliStore(ExportableStore, Protocol):
    """What the commands use beyond the store protocol: every durable backend has it."""

    async def verify(self, *, quick: bool = False,
                     progress: ProgressFn | None = None) -> VerifyReport: ...

    async def gc(self, *, apply: bool = False, min_age_seconds: float = 3600.0) -> GcReport: ...


def is_path_target(target: str | os.PathLike[str]) -> bool:
    """Whether ``target`` names a SQLite file (not ``postgresql://...`` nor ``memory:``)."""
    text = os.fspath(target)
    return text != MEMORY and not is_postgres_target(text)


class CliError(MfmError):
    """A one-line error for the user, with its exit code and a stable code (``.code``, which
    is ``info.code``). An ``MfmError`` like every other error of the package."""

    default_code = CODE_USAGE

    def __init__(self, message: str, exit_code: int, code: str) -> None:
        super().__init__(message, code=code)
        self.exit_code = exit_code


class CliParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line with a code, like every other."""

    def error(self, message: str) -> NoReturn:
        # An invalid argument is echoed: it may be a URL with a password.
        message = redact(message)
        sys.stderr.write(f"mfm-store: error: {self.prog}: {message} "
                         f"(see {self.prog} --help) [{CODE_USAGE}]\n")
        raise SystemExit(EXIT_USAGE)


def seq_arg(text: str) -> int:
    """An argparse type: a seq, 0 .. 2**63-1 (what the store can hold)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a seq: {shorten(text)}") from None
    if not 0 <= value <= _I64_MAX:
        raise argparse.ArgumentTypeError(f"a seq is between 0 and {_I64_MAX}, not "
                                         f"{shorten(text)}")
    return value


def shorten(text: str, width: int = 80) -> str:
    """``text`` for an error message: repr'd, at most about ``width`` characters."""
    return repr(text) if len(text) <= width else repr(text[:width]) + f"... ({len(text)} chars)"


def exit_code_for(exc: MfmError) -> int:
    """The exit code for a library error (see the module docstring)."""
    if isinstance(exc, CorruptionError) or exc.info.code in _FILE_CODES:
        return EXIT_FILE
    if exc.info.code in _NOT_FOUND_CODES:
        return EXIT_NOT_FOUND
    return EXIT_PROBLEM


def add_command(subparsers: Any, name: str, handler: Handler, *, help: str,
                example: str, description: str | None = None,
                db: bool = True) -> argparse.ArgumentParser:
    """A subcommand whose ``--help`` ends with an example; with ``--db`` unless told not to."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name, help=help, description=description or help,
        epilog="example:\n  " + example.replace("\n", "\n  "),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    if db:
        add_db_option(parser, argparse.SUPPRESS)
    parser.set_defaults(handler=handler)
    return parser


def add_db_option(parser: argparse.ArgumentParser, default: Any = None) -> None:
    parser.add_argument("--db", metavar="STORE", default=default,
                        help="the database: a file path, postgresql://... (#schema=NAME) or "
                             f"memory: (default: ${DB_ENV})")


def db_text(args: argparse.Namespace) -> str:
    """``--db`` (after or before the command), else ``$MFM_STORE_DB``, else a usage error;
    as given (``Path`` would drop a trailing separator)."""
    value: str | None = getattr(args, "db", None) or os.environ.get(DB_ENV)
    if not value:
        raise CliError(f"no database given: pass --db STORE or set {DB_ENV}", EXIT_USAGE,
                       CODE_USAGE)
    return value


def db_path(args: argparse.Namespace) -> Path:
    """:func:`db_text` as a path."""
    return Path(db_text(args))


def file_kind(mode: int) -> str:
    """What a non-regular file is, for a message: "a directory", "a FIFO", ..."""
    kinds = [(stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO"),
             (stat.S_ISSOCK, "a socket")]
    return next((name for test, name in kinds if test(mode)), "not a regular file")


def check_database_file(path: Path) -> bool:
    """Whether ``path`` exists; refuses one that is not a regular file (a FIFO would hang
    the open, and SQLite would put its ``-wal`` beside a device) or is empty (SQLite would
    quietly make it a new database)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    if not stat.S_ISREG(st.st_mode):
        raise CliError(f"{path}: not an mfm_store database ({file_kind(st.st_mode)}, "
                       "not a file)", EXIT_FILE, CODE_NOT_A_DATABASE)
    if st.st_size == 0:
        raise CliError(f"{path}: an empty file, not an mfm_store database", EXIT_FILE,
                       CODE_NOT_A_DATABASE)
    return True


@asynccontextmanager
async def open_existing(target: str | os.PathLike[str], *,
                        write: bool = False) -> AsyncIterator[CliStore]:
    """Open a store that must exist (never creates a file); read-only unless ``write``.

    A path must be an existing database file (:func:`check_database_file`); a PostgreSQL URL
    is opened as it is (read-only, a missing schema is ``store_not_found``). ``memory:`` is
    refused: it is a new, empty store in every command, with nothing to read.
    """
    text = os.fspath(target)
    if text == MEMORY:
        raise CliError("memory: is a new, empty store in each command: nothing to read or "
                       "maintain (it is useful as an import check or a push destination)",
                       EXIT_USAGE, CODE_USAGE)
    if is_path_target(text) and not check_database_file(Path(text)):
        raise CliError(f"{text}: no such file", EXIT_FILE, CODE_STORE_NOT_FOUND)
    store = await open_target(text, read_only=not write)
    try:
        # SqliteStore and PostgresStore have CliStore's methods; MemoryStore is refused above.
        yield cast(CliStore, store)
    finally:
        await store.close()


async def open_target(target: str | os.PathLike[str], *, read_only: bool = False) -> Store:
    """``open_store(target)``; a target it refuses as a value (a bad ``#schema=`` name or
    fragment) is a usage error."""
    try:
        return await open_store(target, read_only=read_only)
    except ValueError as exc:
        if isinstance(exc, MfmError):
            raise
        raise CliError(f"{shown_target(target)}: {exc}", EXIT_USAGE, CODE_USAGE) from None


async def resolve_run(store: Store, text: str, where: str | os.PathLike[str]) -> RunId:
    """A run of ``store`` given by its id or a unique prefix of it; ``where`` names the
    store in messages (:func:`shown_target`)."""
    wanted = text.strip().lower()
    if not wanted:
        raise CliError("empty run id", EXIT_USAGE, CODE_USAGE)
    found, count = await match_run(store, wanted)  # a page of runs at a time
    if found is not None and count == 1:
        return found
    if count:
        raise CliError(f"run id prefix {shorten(text)} matches {count} runs; give "
                       "more of it", EXIT_USAGE, CODE_USAGE)
    raise CliError(f"{shown_target(where)}: no run {shorten(text)} (list them with: "
                   "mfm-store runs)", EXIT_NOT_FOUND, CODE_RUN_NOT_FOUND)


def print_json(value: Any, out: TextIO | None = None) -> None:
    stream = sys.stdout if out is None else out
    stream.write(json.dumps(value, ensure_ascii=False, indent=2) + "\n")


def iso_millis(millis: int) -> str:
    """``2024-05-01T12:00:00.123Z`` for Unix milliseconds."""
    moment = datetime.fromtimestamp(millis / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{millis % 1000:03d}Z"


def _tqdm() -> Any:
    """The tqdm class when stderr is a terminal and tqdm is installed, else None."""
    if not sys.stderr.isatty():
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm


_UNITS = {"export": ("line", False), "check": ("B", True), "import": ("B", True),
          "verify": ("row", False), "sync": ("event", False)}


class _Bars:
    """A :data:`~mfm_store.transfer.ProgressFn` drawing one tqdm bar per phase."""

    def __init__(self, tqdm: Any) -> None:
        self._tqdm = tqdm
        self._phase: str | None = None
        self._bar: Any = None

    def __call__(self, phase: str, n: int, total: int | None) -> None:
        if phase != self._phase:
            self.close()
            unit, scale = _UNITS.get(phase, ("it", False))
            self._phase = phase
            self._bar = self._tqdm(total=total, desc=phase, unit=unit, unit_scale=scale,
                                   unit_divisor=1024 if scale else 1000, leave=False,
                                   file=sys.stderr, dynamic_ncols=True)
        if n:
            self._bar.update(n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        self._phase = None


@asynccontextmanager
async def progress_bar() -> AsyncIterator[ProgressFn | None]:
    """Progress bars on a terminal (tqdm), ``None`` when piped or without tqdm."""
    tqdm = _tqdm()
    if tqdm is None:
        yield None
        return
    bars = _Bars(tqdm)
    try:
        yield bars
    finally:
        bars.close()


@asynccontextmanager
async def spinner(label: str) -> AsyncIterator[None]:
    """Elapsed time on a terminal while an operation without progress reports runs."""
    tqdm = _tqdm()
    if tqdm is None:
        yield
        return
    bar = tqdm(total=None, desc=label, bar_format="{desc}... {elapsed}", leave=False,
               file=sys.stderr)

    async def tick() -> None:
        while True:
            await asyncio.sleep(0.2)
            bar.refresh()

    ticker = asyncio.create_task(tick())
    try:
        yield
    finally:
        ticker.cancel()
        bar.close()
