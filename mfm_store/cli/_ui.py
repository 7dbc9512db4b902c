"""``mfm-store ui``: options, then the inspector (:func:`mfm_store.ui.serve`) until Ctrl-C."""

from __future__ import annotations

import argparse
import errno
import os
from typing import Any

from ..errors import CODE_PORT_UNAVAILABLE, CODE_UI_EXTRA_MISSING, CODE_USAGE, MfmError
from ..ui import serve
from ._common import DB_ENV, EXIT_OK, EXIT_USAGE, CliError, add_command

__all__ = ["EXAMPLE", "HELP", "add_arguments", "register", "run"]

HELP = "browse the store in a local, read-only web inspector"
_DESCRIPTION = ("Serve a read-only web inspector of the database on 127.0.0.1 (runs, a run's "
                "timeline with its attempts, facts and context diffs, artifacts, verify) "
                "until Ctrl-C. Needs the 'ui' extra.")
EXAMPLE = ("mfm-store ui --db runs.db            # prints http://127.0.0.1:PORT/\n"
           "mfm-store ui --db runs.db --port 8765 --open")

def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``ui`` (the database comes from the command line's ``--db``)."""
    parser.add_argument("--port", type=int, default=0, metavar="N",
                        help="port on 127.0.0.1 (default: a free port)")
    parser.add_argument("--open", action="store_true", dest="open_browser",
                        help="open the address in your browser")


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
    except MfmError as exc:
        if exc.info.code == CODE_UI_EXTRA_MISSING:  # something to install: a usage error
            raise CliError(str(exc), EXIT_USAGE, CODE_UI_EXTRA_MISSING) from None
        raise
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
