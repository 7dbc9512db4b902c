"""``mfm-store push DEST`` and ``mfm-store pull SRC`` (see :mod:`mfm_store.sync`).

The local store is ``--db`` / ``$MFM_STORE_DB``; DEST and SRC are a path, a
``postgresql://...`` URL (``#schema=name`` picks the schema) or, for push, ``memory:`` (a
check: everything is copied and checked, then dropped). A missing destination file is created;
a source is only read (a SQLite source is opened read-only and must exist). Exit codes as the
other commands: 0 every run copied, 1 a run diverged or could not be copied (listed), 2 usage,
3 a store is missing, foreign or corrupt, 4 a run named with ``--run`` is not in the source.

``register(subparsers)`` adds both commands to the ``mfm-store`` parser; ``python -m
mfm_store._sync_command push|pull ...`` runs them on their own.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from .._open import is_postgres_target, open_store
from ..errors import CODE_STORE_NOT_FOUND, CODE_USAGE
from ..sync import SyncReport, sync
from ._common import (
    DB_ENV,
    EXIT_FILE,
    EXIT_OK,
    EXIT_PROBLEM,
    EXIT_USAGE,
    CliError,
    add_command,
    check_database_file,
    print_json,
    progress_bar,
    resolve_run,
    shown_target,
)

__all__ = ["pull_command", "push_command", "register"]

_MEMORY = "memory:"


def _local(args: argparse.Namespace) -> str:
    value: str | None = getattr(args, "db", None) or os.environ.get(DB_ENV)
    if not value:
        raise CliError(f"no database given: pass --db PATH or set {DB_ENV}", EXIT_USAGE,
                       CODE_USAGE)
    return value


def _shown(target: str) -> str:
    """A target for messages: a PostgreSQL URL without its password (in any form)."""
    return shown_target(target)


def _check_target(target: str, *, source: bool) -> None:
    if target == _MEMORY:
        if source:
            raise CliError("memory: as a source holds nothing to copy", EXIT_USAGE,
                           CODE_USAGE)
        return
    if is_postgres_target(target):
        return
    exists = check_database_file(Path(target))
    if source and not exists:
        raise CliError(f"{target}: no such file", EXIT_FILE, CODE_STORE_NOT_FOUND)


def _open(target: str, *, source: bool) -> Any:
    # A source is opened read-only: sync never writes it, not even a migration.
    return open_store(target, read_only=source)


def _summary(report: SyncReport, verb: str, where: str) -> str:
    lines = [f"{verb} {where}: {report.events_copied} events copied "
             f"({report.runs_added} new run(s), {report.runs_extended} extended, "
             f"{report.runs_unchanged} unchanged, {report.runs_ahead} ahead there), "
             f"{report.artifacts_copied} artifact(s) copied ({report.artifacts_present} "
             f"already there) in {report.seconds:.2f} s"]
    for problem in report.problems:
        lines.append(f"  run {problem.run_id}: {problem.message} [{problem.code}]")
    return "\n".join(lines)


async def _sync(args: argparse.Namespace, *, pushing: bool) -> int:
    local, remote = _local(args), args.target
    src, dst = (local, remote) if pushing else (remote, local)
    if src == dst:
        raise CliError("the source and the destination are the same store", EXIT_USAGE,
                       CODE_USAGE)
    _check_target(src, source=True)
    _check_target(dst, source=False)
    async with _open(src, source=True) as source, _open(dst, source=False) as dest:
        runs = [await resolve_run(source, t, _shown(src)) for t in args.run] if args.run else None
        async with progress_bar() as progress:
            report = await sync(source, dest, runs=runs, progress=progress,
                                full_check=args.full_check)
    if args.json:
        print_json(report.to_json())
    else:
        verb = "push to" if pushing else "pull from"
        print(_summary(report, verb, _shown(remote)))
    return EXIT_OK if report.ok else EXIT_PROBLEM


async def push_command(args: argparse.Namespace) -> int:
    return await _sync(args, pushing=True)


async def pull_command(args: argparse.Namespace) -> int:
    return await _sync(args, pushing=False)


def _common_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", metavar="RUN", action="append",
                   help="only this run (id or unique prefix; repeatable)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--full-check", action="store_true",
                   help="also compare the events of runs whose heads are equal on both sides "
                        "(reads every such run)")


def register(subparsers: Any) -> None:
    p = add_command(
        subparsers, "push", push_command,
        help="copy the database's runs to another store (incremental, checked)",
        description="Copy to DEST (a path, postgresql://... or memory:) what it lacks of the "
                    "database's runs: per run only the events after DEST's head, the "
                    "artifacts they name first. A run whose history differs at DEST is "
                    "refused and left untouched (exit 1); running push again after an "
                    "interruption completes it, with no duplicates.",
        example="mfm-store push --db edge.db postgresql://app@centre/prod\n"
                "mfm-store push --db edge.db backup.db --run 3f2b8c1e --json")
    p.add_argument("target", metavar="DEST", help="the destination store")
    _common_options(p)
    p = add_command(
        subparsers, "pull", pull_command,
        help="copy another store's runs into the database (incremental, checked)",
        description="Copy into the database (created if missing) what it lacks of SRC's runs "
                    "(SRC a path or postgresql://...), with the same checks as push. A pulled "
                    "file replays offline like any other.",
        example="mfm-store pull --db laptop.db postgresql://app@centre/prod --run 3f2b8c1e")
    p.add_argument("target", metavar="SRC", help="the source store")
    _common_options(p)
