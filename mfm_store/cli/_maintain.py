"""Maintenance commands: ``verify``, ``backup``, ``gc``, ``stats``."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import attrs

from ..errors import CODE_USAGE
from ..sqlite import SqliteStore
from ..sync import copy_to_file
from ._common import (
    EXIT_OK,
    EXIT_PROBLEM,
    EXIT_USAGE,
    MEMORY,
    CliError,
    add_command,
    db_text,
    is_path_target,
    open_existing,
    print_json,
    progress_bar,
    shorten,
    shown_target,
    spinner,
)
from ._files import check_new_file, check_not_database

__all__ = ["register"]


async def _verify(args: argparse.Namespace) -> int:
    db = db_text(args)
    async with open_existing(db) as store, progress_bar() as bar:
        report = await store.verify(quick=args.quick, progress=bar)
    if args.json:
        print_json({"ok": report.ok, "runs": report.runs, "events": report.events,
                    "fact_bindings": report.bindings, "artifacts": report.artifacts,
                    "problems": [attrs.asdict(p) for p in report.problems]})
    else:
        print(f"{shown_target(db)}: {report}")
    return EXIT_OK if report.ok else EXIT_PROBLEM


def _same_source(a: str, b: str) -> bool:
    return Path(a) == Path(b) if is_path_target(a) and is_path_target(b) else a == b


async def _backup(args: argparse.Namespace) -> int:
    paths = args.paths
    if len(paths) > 2:
        raise CliError("backup takes SRC DEST, or DEST with --db SRC", EXIT_USAGE, CODE_USAGE)
    if len(paths) == 2:
        given = getattr(args, "db", None)
        if given is not None and not _same_source(given, paths[0]):
            raise CliError(f"two sources given: --db {shown_target(given)} and "
                           f"{shown_target(paths[0])}", EXIT_USAGE, CODE_USAGE)
        src, dest_text = paths[0], paths[1]
    else:
        src, dest_text = db_text(args), paths[0]
    if not is_path_target(dest_text):
        raise CliError(f"backup writes a new SQLite file, not {shown_target(dest_text)} (to "
                       "copy runs into another store, use push)", EXIT_USAGE, CODE_USAGE)
    if src == MEMORY:
        raise CliError("memory: is a new, empty store in each command: nothing to back up",
                       EXIT_USAGE, CODE_USAGE)
    dest = Path(dest_text)
    if is_path_target(src):
        check_not_database(dest, Path(src))
    check_new_file(dest_text)
    async with open_existing(src) as store:
        if isinstance(store, SqliteStore):
            async with spinner("backing up"):
                await store.backup(dest)
        else:
            # Another backend: its runs copied into a new compact file, each run's events
            # together, which replays offline like a backup of a file.
            async with progress_bar() as bar:
                await copy_to_file(store, dest, progress=bar)
    print(f"backed up {shown_target(src)} to {dest} ({dest.stat().st_size} bytes)")
    return EXIT_OK


def _seconds(text: str) -> float:
    """An argparse type: a finite number of seconds >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {shorten(text)}") from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"a number of seconds >= 0, not {shorten(text)}")
    return value


# Older than the Unix epoch: any larger age keeps everything, and would overflow the
# store's millisecond arithmetic.
_MAX_AGE = 1e12


async def _gc(args: argparse.Namespace) -> int:
    async with open_existing(db_text(args), write=args.apply) as store, spinner("scanning"):
        report = await store.gc(apply=args.apply,
                                min_age_seconds=min(args.min_age, _MAX_AGE))
    if args.json:
        print_json({"applied": report.applied, "artifacts": list(report.artifacts),
                    "bytes": report.bytes})
        return EXIT_OK
    n = len(report.artifacts)
    if args.apply:
        print(f"removed {n} unreferenced artifact(s), {report.bytes} bytes")
    else:
        print(f"would remove {n} unreferenced artifact(s), {report.bytes} bytes "
              f"(older than {args.min_age:g} s; dry run, nothing removed; use --apply)")
    for artifact_id in report.artifacts:
        print(f"  {artifact_id}")
    return EXIT_OK


async def _stats(args: argparse.Namespace) -> int:
    async with open_existing(db_text(args)) as store:
        stats = await store.stats()
    if args.json:
        print_json(stats)
    else:
        width = max(len(k) for k in stats)
        for key, value in stats.items():
            print(f"{key:<{width}}  {value}")
    return EXIT_OK


def register(subparsers: Any) -> None:
    p = add_command(subparsers, "verify", _verify,
                    help="check every checksum, hash, seq, head and binding",
                    description="Check the whole file: event and artifact checksums, every "
                                "artifact's SHA-256, seq contiguity, run heads, fact bindings, "
                                "referenced artifacts. Lists every problem; exit code 1 if "
                                "there is any, 0 when the file is clean.",
                    example="mfm-store verify --db runs.db || echo 'problems found'")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--quick", action="store_true",
                   help="a lighter page check (SQLite's quick_check: indexes are not compared "
                        "with their tables); every row is still checked")

    p = add_command(subparsers, "backup", _backup,
                    help="write a consistent copy of a database",
                    description="Write a consistent, compact copy of SRC to the new SQLite "
                                "file DEST, each run's events stored together, while writers "
                                "continue. DEST must not exist. SRC may also be given with "
                                "--db or $MFM_STORE_DB; of a PostgreSQL store (SRC "
                                "postgresql://...) the copy is a SQLite file holding all its "
                                "runs and the artifacts they name, ready to replay offline.",
                    example="mfm-store backup runs.db copy.db\n"
                            "mfm-store backup --db runs.db copy.db\n"
                            "mfm-store backup --db postgresql://app@centre/prod audit.db")
    p.add_argument("paths", nargs="+", metavar="SRC DEST", help="[SRC] DEST")

    p = add_command(subparsers, "gc", _gc,
                    help="find (and with --apply delete) artifacts no run references",
                    description="List artifacts that no run references (fact payloads, "
                                "snapshots, manifests, payload refs) and that are older than "
                                "--min-age. A dry run unless --apply.",
                    example="mfm-store gc --db runs.db\n"
                            "mfm-store gc --db runs.db --apply --min-age 0")
    p.add_argument("--apply", action="store_true", help="delete them (default: dry run)")
    p.add_argument("--min-age", type=_seconds, default=3600.0, metavar="SECONDS",
                   help="keep artifacts younger than this (default 3600)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")

    p = add_command(subparsers, "stats", _stats, help="counts and sizes",
                    example="mfm-store stats --db runs.db --json")
    p.add_argument("--json", action="store_true", help="print a JSON object")
