"""``mfm-store fork RUN --at STATE``: prepare a run that continues RUN from STATE.

The new run (see :func:`mfm_store.engine.fork`) holds RUN's history up to the last state decided
before STATE and names its origin; its id is printed (``--json``: the whole result). Running it
needs the workflow's plan, so it is the library's ``resume(store, new_run_id, plan, ...)``.

The store written is ``--db`` / ``$MFM_STORE_DB`` (a path, ``postgresql://...``); it must
exist unless ``--from SRC`` names the store holding RUN (opened read-only: a copied file), whose
artifacts are then copied. Exit codes as the other commands: 0 ok, 1 refused (a state the run
never reached, a read-only file), 2 usage, 3 a store missing or foreign, 4 RUN not found.

``register(subparsers)`` adds the command to the ``mfm-store`` parser (or ``add_arguments`` to
a parser of one's own, with :func:`handler` or :func:`run`); ``python -m
mfm_store._fork_command fork ...`` still runs it (the ``mfm-store`` command line).
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from .._open import is_postgres_target, open_store
from ..engine.fork import ForkResult, fork
from ..errors import CODE_STORE_NOT_FOUND, CODE_USAGE
from ..ids import RunId, StateId
from ._common import (
    EXIT_FILE,
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    add_command,
    check_database_file,
    db_text,
    print_json,
    resolve_run,
)

__all__ = ["add_arguments", "handler", "register", "run"]



def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's arguments (``--db`` is the caller's, as for every command)."""
    parser.add_argument("run", metavar="RUN", help="the run to fork (id or unique prefix)")
    parser.add_argument("--at", metavar="STATE", required=True,
                        help="the state to run again (machine.step.state); the run must have "
                             "reached it")
    parser.add_argument("--from", dest="source", metavar="SRC",
                        help="read RUN from this store (a path, opened read-only, or "
                             "postgresql://...) and write the new run to --db")
    parser.add_argument("--new-run", metavar="RUN_ID", help="the new run's id (default: new)")
    parser.add_argument("--reuse-facts", choices=("before", "all"), default="before",
                        help="'all' also binds RUN's explicit-key facts of STATE and after "
                             "(default: only those recorded before STATE)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def _check_file(target: str, *, must_exist: bool) -> None:
    if target == "memory:":
        raise CliError("memory: holds nothing once the command ends; fork into a file or a "
                       "server", EXIT_USAGE, CODE_USAGE)
    if is_postgres_target(target):
        return
    if not check_database_file(Path(target)) and must_exist:
        raise CliError(f"{target}: no such file", EXIT_FILE, CODE_STORE_NOT_FOUND)


def _parse_ids(args: argparse.Namespace) -> tuple[StateId, RunId | None]:
    try:
        state = StateId(args.at)
        new_id = None if args.new_run is None else RunId.parse(args.new_run)
    except ValueError as exc:
        raise CliError(str(exc), EXIT_USAGE, CODE_USAGE) from None
    return state, new_id


def _to_json(result: ForkResult) -> dict[str, Any]:
    return {"run_id": str(result.run_id), "source_run_id": str(result.source_run_id),
            "source_seq": result.source_seq, "state_id": str(result.state_id),
            "head_seq": result.head_seq, "events_copied": result.events_copied,
            "facts_rebound": result.facts_rebound, "facts_reused": result.facts_reused,
            "artifacts_copied": result.artifacts_copied}


async def handler(args: argparse.Namespace) -> int:
    """The command, for an ``mfm-store`` parser (``args.handler``)."""
    target = db_text(args)
    state, new_id = _parse_ids(args)
    source_text: str | None = args.source
    if source_text is not None and source_text == target:
        source_text = None
    _check_file(target, must_exist=source_text is None)
    if source_text is None:
        async with open_store(target) as store:
            result = await fork(store, await resolve_run(store, args.run, target), at_state=state,
                                new_run_id=new_id, reuse_facts=args.reuse_facts)
    else:
        _check_file(source_text, must_exist=True)
        async with open_store(source_text, read_only=True) as src, \
                open_store(target) as store:
            run = await resolve_run(src, args.run, source_text)
            result = await fork(store, run, at_state=state, new_run_id=new_id,
                                reuse_facts=args.reuse_facts, source=src)
    if args.json:
        print_json(_to_json(result))
    else:
        print(result.run_id)
    return EXIT_OK


def run(args: argparse.Namespace) -> int:
    """The command on its own event loop; returns the exit code (errors raise, as for
    :func:`handler`)."""
    return asyncio.run(handler(args))


def register(subparsers: Any) -> None:
    p = add_command(
        subparsers, "fork", handler,
        help="prepare a new run that continues RUN from STATE (re-using its facts)",
        description="Create a run holding RUN's history up to the last state decided before "
                    "STATE (facts included, time and random facts rebound) and a run_forked "
                    "event naming RUN; print its id. RUN is never written. Run the new run "
                    "with the library: resume(store, NEW_RUN, plan, transports=...).",
        example="mfm-store fork --db runs.db 3f2b8c1e --at swap.main.decide\n"
                "mfm-store fork --db mine.db 3f2b8c1e --at swap.main.decide --from copy.db")
    add_arguments(p)
