"""``mfm-store prune``: remove finished runs (a dry run unless ``--apply``).

``--finished-before AGE`` (``30d``, ``12h``, ``90m``, ``45s``, ``2w``): runs finished longer
ago than AGE; ``--keep-last N``: never the N most recently finished; or RUN ids/prefixes. A
running run is never pruned. ``--archive PATH`` first writes the runs to a new export file
(JSON Lines; ``mfm-store import`` brings them back) and checks it before deleting anything.
Without ``--apply`` nothing is written: the runs that would go are listed. Exit codes as the
other commands (0 ok, 1 refused, 2 usage, 3 a store missing or foreign).

``register(subparsers)`` adds the command to the ``mfm-store`` parser;
``python -m mfm_store._prune_command ...`` still runs the ``mfm-store`` command line.
"""

from __future__ import annotations

import argparse
import re
from typing import Any

from .. import _rules
from ..errors import CODE_USAGE
from ..retention import PruneReport
from ._common import (
    EXIT_OK,
    EXIT_PROBLEM,
    EXIT_USAGE,
    CliError,
    add_command,
    db_text,
    iso_millis,
    open_existing,
    print_json,
    resolve_run,
)

__all__ = ["add_arguments", "age_millis", "handler", "register"]

_AGE = re.compile(r"(\d+)([smhdw])\Z")
_UNIT_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


def age_millis(text: str) -> int:
    """An argparse type: ``30d`` → milliseconds."""
    m = _AGE.match(text.strip())
    if not m:
        raise argparse.ArgumentTypeError(f"not an age (like 30d, 12h, 90m, 45s, 2w): {text!r}")
    return int(m.group(1)) * _UNIT_MS[m.group(2)]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", metavar="RUN", nargs="*",
                        help="runs to prune (ids or unique prefixes) instead of a policy")
    parser.add_argument("--finished-before", type=age_millis, metavar="AGE",
                        help="runs finished more than AGE ago (30d, 12h, 90m, 45s, 2w)")
    parser.add_argument("--keep-last", type=int, metavar="N",
                        help="keep the N most recently finished runs")
    parser.add_argument("--archive", metavar="PATH",
                        help="first write the runs to this new export file, and check it")
    parser.add_argument("--apply", action="store_true",
                        help="delete (without it: only list what would go)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


async def handler(args: argparse.Namespace) -> int:
    target = db_text(args)
    if args.runs and (args.finished_before is not None or args.keep_last is not None):
        raise CliError("give RUN ids or --finished-before/--keep-last, not both", EXIT_USAGE,
                       CODE_USAGE)
    if not args.runs and args.finished_before is None and args.keep_last is None:
        raise CliError("say what to prune: RUN ids, --finished-before AGE or --keep-last N",
                       EXIT_USAGE, CODE_USAGE)
    if args.keep_last is not None and args.keep_last < 0:
        raise CliError("--keep-last is at least 0", EXIT_USAGE, CODE_USAGE)
    async with open_existing(target, write=args.apply) as store:
        prune = getattr(store, "prune", None)
        if prune is None:
            raise CliError(f"{target}: this store cannot prune yet", EXIT_PROBLEM,
                           "unsupported")
        ids = [await resolve_run(store, r, target) for r in args.runs] or None
        cutoff = None if args.finished_before is None else \
            _rules.now_millis() - args.finished_before
        by_id = {r.run_id: r for r in await store.list_runs()}
        report: PruneReport = await prune(ids, finished_before=cutoff, keep_last=args.keep_last,
                                          archive=args.archive if args.apply else None,
                                          dry_run=not args.apply)
    if args.json:
        print_json(report.to_json())
        return EXIT_OK
    verb = "pruned" if report.applied else "would prune"
    for rid in report.runs:
        r = by_id.get(rid)
        when = iso_millis(r.updated_millis) if r else "-"
        status = r.status if r else "-"
        events = r.head_seq if r else 0
        print(f"{verb}  {rid}  {status:<10} {events:>7} events  finished {when}")
    for rid, why in report.kept:
        print(f"kept    {rid}  ({why.replace('_', ' ')})")
    summary = f"{len(report.runs)} runs, {report.events} events"
    if report.applied:
        summary += (f", {report.fact_bindings} bindings, {len(report.artifacts)} artifacts "
                    f"({report.artifact_bytes} bytes)")
        if report.archive:
            summary += f"; archived to {report.archive}"
        if report.file_bytes_before is not None:
            summary += f"; file {report.file_bytes_before} -> {report.file_bytes_after} bytes"
    else:
        summary += "; nothing deleted (add --apply)"
        if args.archive:
            summary += f"; --apply archives them to {args.archive} first"
    print(summary)
    return EXIT_OK


def register(subparsers: Any) -> None:
    p = add_command(
        subparsers, "prune", handler,
        help="remove finished runs (dry run unless --apply), optionally archiving them first",
        description="Remove finished runs by age (--finished-before), keeping the last N "
                    "(--keep-last), or by id: their events, bindings and run rows in one "
                    "transaction, then the artifacts nothing references any more; the file's "
                    "free pages go back to the file system. A running run is never pruned. "
                    "Without --apply, only lists what would go.",
        example="mfm-store prune --db runs.db --finished-before 30d\n"
                "mfm-store prune --db runs.db --finished-before 30d --keep-last 100 "
                "--archive old.jsonl --apply")
    add_arguments(p)
