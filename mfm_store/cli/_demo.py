"""``mfm-store demo``: wires the command to the demo application (:mod:`mfm_store.demo`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..demo import copy_path_for, default_demo_path, run_demo, story
from ..errors import CODE_DEMO_PATH_UNUSABLE, CODE_NOT_A_DEMO_FILE, StorageError
from ._common import EXIT_FILE, EXIT_OK, CliError, add_command

__all__ = ["register"]


async def _demo(args: argparse.Namespace) -> int:
    given = getattr(args, "db", None)
    path = Path(given) if given else default_demo_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CliError(f"cannot create {path.parent} ({exc.strerror}); choose a file with "
                       "--db PATH", EXIT_FILE, CODE_DEMO_PATH_UNUSABLE) from None
    try:
        report = await run_demo(path, copy_path_for(path))
    except StorageError as exc:
        if exc.info.code != CODE_NOT_A_DEMO_FILE:
            raise
        raise CliError(str(exc), EXIT_FILE, CODE_NOT_A_DEMO_FILE) from None
    print(story(report))
    return EXIT_OK if report.replay.identical and report.verify_ok else 1


def register(subparsers: Any) -> None:
    p = add_command(subparsers, "demo", _demo, db=False,
                    help="record, crash, resume, copy and replay a small workflow",
                    description="Record a small live workflow into a fresh file, kill the "
                                "recording process with SIGKILL mid-run, resume the run "
                                "re-using its facts, back the file up and replay the copy "
                                "offline. Its market and broker are a small HTTP server it "
                                "starts on 127.0.0.1 and stops (no other network). The file is "
                                f"{default_demo_path()} unless --db is given (an earlier demo "
                                "file there is replaced; any other file is left alone).",
                    example="mfm-store demo\nmfm-store demo --db /tmp/demo.db")
    p.add_argument("--db", metavar="PATH", default=argparse.SUPPRESS,
                   help="where to record (default: the user's data folder; $MFM_STORE_DB is "
                        "not used, so the demo never touches your own database)")
