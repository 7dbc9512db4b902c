"""Maintenance commands: ``verify``, ``backup``, ``gc``, ``stats``."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import attrs

from ._common import (
    EXIT_OK,
    EXIT_PROBLEM,
    EXIT_USAGE,
    CliError,
    add_command,
    db_path,
    open_existing,
    print_json,
    progress_bar,
    shorten,
    spinner,
)
from ._files import check_new_file, check_not_database

__all__ = ["register"]


async def _verify(args: argparse.Namespace) -> int:
    path = db_path(args)
    async with open_existing(path) as store, progress_bar() as bar:
        report = await store.verify(progress=bar)
    if args.json:
        print_json({"ok": report.ok, "runs": report.runs, "events": report.events,
                    "fact_bindings": report.bindings, "artifacts": report.artifacts,
                    "problems": [attrs.asdict(p) for p in report.problems]})
    else:
        print(f"{path}: {report}")
    return EXIT_OK if report.ok else EXIT_PROBLEM


async def _backup(args: argparse.Namespace) -> int:
    paths = args.paths
    if len(paths) > 2:
        raise CliError("backup takes SRC DEST, or DEST with --db SRC", EXIT_USAGE, "usage")
    if len(paths) == 2:
        given = getattr(args, "db", None)
        if given is not None and Path(given) != Path(paths[0]):
            raise CliError(f"two sources given: --db {given} and {paths[0]}", EXIT_USAGE,
                           "usage")
        src, dest = Path(paths[0]), Path(paths[1])
    else:
        src, dest = db_path(args), Path(paths[0])
    check_not_database(dest, src)
    check_new_file(paths[-1])
    async with open_existing(src) as store, spinner("backing up"):
        await store.backup(dest)
    print(f"backed up {src} to {dest} ({dest.stat().st_size} bytes)")
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
    async with open_existing(db_path(args), write=args.apply) as store, spinner("scanning"):
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
    async with open_existing(db_path(args)) as store:
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

    p = add_command(subparsers, "backup", _backup,
                    help="write a consistent copy of a database",
                    description="Write a consistent copy of SRC to DEST, each run's events "
                                "stored together, while writers continue. DEST must not "
                                "exist. SRC may also be given with --db or $MFM_STORE_DB.",
                    example="mfm-store backup runs.db copy.db\n"
                            "mfm-store backup --db runs.db copy.db")
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
