"""``mfm-store tail [RUN] [--json]``: print events as they are committed, until Ctrl-C.

With RUN (an id or a unique prefix): the run's events from the start (``--after SEQ``: after
that seq), then each new one. Without: every run's new events as they land (``--from-start``:
every event of the store first), one line each with its run. ``--json``: one JSON line per
event (the interchange form, as ``show --json``). Ctrl-C (or SIGTERM) ends it with exit 0.

A SQLite file is opened as a writer would open it (it must exist; nothing is written): a
read-only open of a file another process is writing reads a private copy, which never
changes. ``register(subparsers)`` adds the command to the ``mfm-store`` parser;
``python -m mfm_store._tail_command ...`` still runs the ``mfm-store`` command line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from pathlib import Path
from typing import Any

from .._open import open_store
from ..errors import CODE_STORE_NOT_FOUND, CODE_USAGE
from ..events import DomainEvent, EventEnvelope
from ..follow import Follower
from ..transfer import json_line
from ._common import (
    EXIT_FILE,
    EXIT_OK,
    EXIT_USAGE,
    MEMORY,
    CliError,
    add_command,
    check_database_file,
    db_text,
    is_path_target,
    iso_millis,
    resolve_run,
    seq_arg,
)
from ._inspect import describe

__all__ = ["add_arguments", "handler", "register"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN", nargs="?",
                        help="the run to follow (id or unique prefix; default: every run)")
    parser.add_argument("--after", type=seq_arg, default=0, metavar="SEQ",
                        help="with RUN: start after this seq (default 0: the whole run)")
    parser.add_argument("--from-start", action="store_true",
                        help="without RUN: print every stored event first")
    parser.add_argument("--json", action="store_true",
                        help="one JSON line per event (the interchange form)")
    parser.add_argument("--full-ids", action="store_true", help="do not shorten artifact ids")


def line(env: EventEnvelope, *, with_run: bool, full_ids: bool = False) -> str:
    """One readable line: ``[run] seq kind text @ time``."""
    label, text = describe(env.event, full_ids=full_ids)
    at = "" if env.ts_millis is None else f"  @ {iso_millis(env.ts_millis)}"
    kind = label if not isinstance(env.event, DomainEvent) else f"· {label}"
    run = f"{env.run_id}  " if with_run else ""
    return f"{run}{env.seq:>6}  {kind:<17} {text}{at}"


async def handler(args: argparse.Namespace) -> int:
    target = db_text(args)
    if target == MEMORY:
        raise CliError("memory: is a new, empty store: nothing to follow", EXIT_USAGE, CODE_USAGE)
    if is_path_target(target) and not check_database_file(Path(target)):
        raise CliError(f"{target}: no such file", EXIT_FILE, CODE_STORE_NOT_FOUND)
    loop = asyncio.get_running_loop()
    async with open_store(target) as store:
        run_id = None if args.run is None else await resolve_run(store, args.run, target)
        after: Any = args.after if run_id is not None else (None if args.from_start else "end")
        follower: Follower = store.follow(run_id, after=after)  # type: ignore[attr-defined]
        stopping: list[asyncio.Task[None]] = []

        def stop() -> None:
            stopping.append(loop.create_task(follower.aclose()))

        handled = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, stop)
                handled.append(sig)
        out = sys.stdout
        try:
            async with follower:
                async for env in follower:
                    if args.json:
                        out.buffer.write(json_line(env.to_json()))
                        out.buffer.flush()
                    else:
                        out.write(line(env, with_run=run_id is None, full_ids=args.full_ids)
                                  + "\n")
                        out.flush()
        finally:
            for sig in handled:
                loop.remove_signal_handler(sig)
            for task in stopping:
                await task
    return EXIT_OK


def register(subparsers: Any) -> None:
    p = add_command(
        subparsers, "tail", handler,
        help="print events as they are committed (Ctrl-C ends)",
        description="Follow a run (from its start) or every run (from now) and print each "
                    "event as it is committed by any process; Ctrl-C ends it (exit 0).",
        example="mfm-store tail --db runs.db 3f2b8c1e\n"
                "mfm-store tail --db runs.db --json | jq .event")
    add_arguments(p)
