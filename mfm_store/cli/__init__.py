"""``mfm-store``: the command line (SPEC §8). Each command is thin: parse, open, one library
call, print.

The database is ``--db STORE`` (before or after the command), else ``$MFM_STORE_DB``: a file
path, a ``postgresql://`` (or ``postgres://``) URL, or ``memory:`` where that makes sense
(``import`` then only checks the export, ``push`` only checks the copy); ``demo`` never reads
``$MFM_STORE_DB``. Reading commands open the store read-only and never create a file. A URL's
password is never printed.
Errors are one line on stderr (``mfm-store: error: <message> [<code>]``), never a traceback:
an unexpected exception (a bug) is reported the same way with code ``internal_error``.
Exit codes are listed in ``mfm-store --help``.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import sys
from collections.abc import Sequence

from ..errors import CODE_INTERNAL, CODE_INVALID_VALUE, CODE_OS_ERROR, MfmError
from ._common import (
    DB_ENV,
    EXIT_FILE,
    EXIT_INTERNAL,
    EXIT_PROBLEM,
    EXIT_USAGE,
    CliError,
    CliParser,
    add_db_option,
    exit_code_for,
    redact,
    shown_target,
)

# The error type, exit codes and URL shortening are also used by mfm_store.ui.serve.
__all__ = ["CODE_INTERNAL", "EXIT_FILE", "EXIT_USAGE", "CliError", "build_parser", "main",
           "shown_target"]


_EPILOG = f"""\
the database: --db STORE (before or after the command) wins over ${DB_ENV}; STORE is a
file path, postgresql://USER@HOST/DB (#schema=NAME, default mfm) or memory: (import, push).
Reading commands open it read-only and never create a file. demo uses its own file.

exit codes: 0 ok, 1 problem found (verify) or operation refused, 2 usage error,
3 database (or input) file missing, foreign, corrupt or unreadable, 4 run or artifact not found,
5 internal error (a bug: please report it)

example:
  mfm-store demo
  export {DB_ENV}=runs.db; mfm-store runs; mfm-store verify
  mfm-store push --db runs.db postgresql://app@centre/prod
"""


def build_parser() -> argparse.ArgumentParser:
    from . import _demo, _fork, _inspect, _maintain, _prune, _sync, _tail, _transfer, _ui

    parser = CliParser(
        prog="mfm-store", description="Inspect, check, move and demo mfm_store databases "
        "(deterministic, replayable workflow runs in one SQLite file or a PostgreSQL "
        "schema).",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_db_option(parser)
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for module in (_demo, _inspect, _maintain, _transfer, _sync, _fork, _tail, _prune, _ui):
        module.register(subparsers)
    return parser


_MAX_MESSAGE = 1000


def _error(message: str, code: str) -> None:
    """One line, whatever the message holds (a path may contain a newline), and never a
    password (a message may quote a PostgreSQL URL)."""
    text = redact(message).replace("\r", "\\r").replace("\n", "\\n")
    if len(text) > _MAX_MESSAGE:
        text = text[:_MAX_MESSAGE] + "..."
    sys.stderr.write(f"mfm-store: error: {text} [{code}]\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit code (the console script exits with it)."""
    # Paths given as undecodable bytes come back as lone surrogates: print them escaped
    # rather than fail (stderr already does).
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(errors="backslashreplace")
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        code: int = asyncio.run(handler(args))
        return code
    except CliError as exc:
        _error(str(exc), exc.code)
        return exc.exit_code
    except MfmError as exc:
        _error(str(exc), exc.info.code)
        return exit_code_for(exc)
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, and keep Python from complaining
        # again when it flushes stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 128 + 13
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        _error(f"{where}{exc.strerror or exc}", CODE_OS_ERROR)
        return EXIT_FILE
    except KeyboardInterrupt:
        sys.stderr.write("mfm-store: interrupted\n")
        return 130
    except ValueError as exc:
        info = getattr(exc, "info", None)
        _error(str(exc), getattr(info, "code", CODE_INVALID_VALUE))
        return EXIT_PROBLEM
    except Exception as exc:  # the last resort: a bug, still reported in one line
        _error(f"internal error, please report it: {type(exc).__name__}: {exc}",
               CODE_INTERNAL)
        return EXIT_INTERNAL
