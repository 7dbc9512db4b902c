"""``mfm-store ui``: options, opening the store read-only, serving until Ctrl-C.

Nothing here imports the ``ui`` extra's libraries at import time, so the command line works
(and says what to install) without them.
"""

from __future__ import annotations

import argparse
import errno
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TextIO

from .._open import open_store
from ..cli._common import (
    DB_ENV,
    EXIT_FILE,
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    add_command,
    shown_target,
)
from ..errors import (
    CODE_NOT_A_DATABASE,
    CODE_PORT_UNAVAILABLE,
    CODE_STORE_NOT_FOUND,
    CODE_UI_EXTRA_MISSING,
    CODE_USAGE,
)
from ..stores import Store

__all__ = ["EXAMPLE", "HELP", "add_arguments", "open_read_only", "register", "run", "serve"]

HELP = "browse the store in a local, read-only web inspector"
_DESCRIPTION = ("Serve a read-only web inspector of the database on 127.0.0.1 (runs, a run's "
                "timeline with its attempts, facts and context diffs, artifacts, verify) "
                "until Ctrl-C. Needs the 'ui' extra.")
EXAMPLE = ("mfm-store ui --db runs.db            # prints http://127.0.0.1:PORT/\n"
           "mfm-store ui --db runs.db --port 8765 --open")
_MISSING_EXTRA = ("the web inspector needs the 'ui' extra: "
                  "python3 -m pip install 'mfm_store[ui]'")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``ui`` (the database comes from the command line's ``--db``)."""
    parser.add_argument("--port", type=int, default=0, metavar="N",
                        help="port on 127.0.0.1 (default: a free port)")
    parser.add_argument("--open", action="store_true", dest="open_browser",
                        help="open the address in your browser")


@asynccontextmanager
async def open_read_only(target: str | os.PathLike[str]) -> AsyncIterator[tuple[Store, str]]:
    """The store at ``target`` opened read-only (``open_store``), and a label for pages.

    ``target`` is the path of an existing SQLite file (never created), a PostgreSQL URL
    (its password is left out of the label) or ``memory:`` (an empty store).
    """
    text = os.fspath(target)
    if text == "memory:":
        async with open_store("memory:") as memory:
            yield memory, text
        return
    if text.startswith(("postgresql://", "postgres://")):
        async with open_store(text, read_only=True) as store:
            yield store, _without_password(text)
        return
    path = Path(text)
    if not path.exists():
        raise CliError(f"{path}: no such file", EXIT_FILE, CODE_STORE_NOT_FOUND)
    if path.is_dir():
        raise CliError(f"{path}: is a directory, not a database file", EXIT_FILE,
                       CODE_NOT_A_DATABASE)
    async with open_store(path, read_only=True) as store:
        yield store, str(path)


def _without_password(url: str) -> str:
    # Both spellings: user:password@ and ?password=.
    return shown_target(url)


async def serve(target: str | os.PathLike[str], *, host: str = "127.0.0.1", port: int = 0,
                open_browser: bool = False, out: TextIO | None = None) -> None:
    """Serve the inspector over the store at ``target`` until Ctrl-C (SIGINT) or SIGTERM.

    Opens the store read-only, listens on ``host`` (a loopback address only) and ``port``
    (0: a free port), prints the address once it accepts connections, optionally opens the
    user's browser, and closes the store on the way out. Raises ``CliError`` for a missing
    file or a missing ``ui`` extra, ``ValueError`` for a host that is not loopback.
    """
    try:
        from ._server import serve_store
    except ImportError as exc:
        raise CliError(f"{_MISSING_EXTRA} ({exc})", EXIT_USAGE, CODE_UI_EXTRA_MISSING) from None
    async with open_read_only(target) as (store, label):
        await serve_store(store, label=label, host=host, port=port,
                          open_browser=open_browser, out=out)


async def run(args: argparse.Namespace) -> int:
    """The ``ui`` command: ``--db`` (or ``$MFM_STORE_DB``), ``--port``, ``--open``."""
    target = getattr(args, "db", None) or os.environ.get(DB_ENV)
    if not target:
        raise CliError(f"no database given: pass --db PATH or set {DB_ENV}", EXIT_USAGE,
                       CODE_USAGE)
    if not 0 <= args.port <= 65535:
        raise CliError(f"--port must be 0..65535, not {args.port}", EXIT_USAGE, CODE_USAGE)
    try:
        await serve(target, port=args.port, open_browser=args.open_browser)
    except OSError as exc:
        if exc.errno in (errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL):
            raise CliError(f"cannot listen on 127.0.0.1:{args.port}: {exc.strerror or exc}",
                           EXIT_USAGE, CODE_PORT_UNAVAILABLE) from None
        raise
    return EXIT_OK


def register(subparsers: Any) -> None:
    """Add ``ui`` to the command line's subcommands (``--db`` comes with it)."""
    parser = add_command(subparsers, "ui", run, help=HELP, example=EXAMPLE,
                         description=_DESCRIPTION)
    add_arguments(parser)
