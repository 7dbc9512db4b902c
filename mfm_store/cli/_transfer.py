"""``export`` and ``import``: JSON Lines in the interchange form (see ``mfm_store.transfer``)."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import IO, Any

from ..sqlite import SqliteStore
from ..transfer import export_jsonl, import_jsonl
from ._common import (
    EXIT_FILE,
    EXIT_OK,
    CliError,
    add_command,
    db_path,
    open_existing,
    progress_bar,
    resolve_run,
)

__all__ = ["register"]


async def _export(args: argparse.Namespace) -> int:
    async with open_existing(db_path(args)) as store, progress_bar() as progress:
        run_id = None if args.run is None else await resolve_run(store, args.run)
        if args.output is None:
            report = await export_jsonl(store, sys.stdout.buffer, run_id=run_id,
                                        progress=progress)
        else:
            target = Path(args.output)
            partial = target.with_name(target.name + ".partial")
            try:
                with partial.open("wb") as out:
                    report = await export_jsonl(store, out, run_id=run_id, progress=progress)
                    out.flush()
                    os.fsync(out.fileno())
                partial.replace(target)
            finally:
                partial.unlink(missing_ok=True)
    if args.output is not None:
        print(f"exported {report.runs} run(s), {report.events} events, {report.artifacts} "
              f"artifacts to {args.output} ({report.bytes} bytes)", file=sys.stderr)
    return EXIT_OK


def _spool_stdin() -> IO[bytes]:
    """Standard input copied to a temporary file: an import reads its input twice."""
    spool = tempfile.TemporaryFile()  # noqa: SIM115 (the caller closes it)
    shutil.copyfileobj(sys.stdin.buffer, spool)
    return spool


async def _import(args: argparse.Namespace) -> int:
    path = db_path(args)
    if args.file == "-":
        source = _spool_stdin()
    else:
        if not Path(args.file).is_file():
            raise CliError(f"{args.file}: no such file", EXIT_FILE, "export_not_found")
        source = open(args.file, "rb")  # noqa: SIM115 (closed by the with below)
    with source:
        created = not path.exists()
        async with SqliteStore.open(path) as store, progress_bar() as progress:
            report = await import_jsonl(store, source, progress=progress)
    where = f"{path} (new file)" if created else str(path)
    if not report.changed:
        print(f"{where}: nothing to import, the file already holds everything "
              f"({report.runs_skipped} run(s), {report.artifacts_present} artifact(s))")
        return EXIT_OK
    print(f"{where}: imported {report.events_added} events "
          f"({report.runs_added} new run(s), {report.runs_extended} extended, "
          f"{report.runs_skipped} already present) and {report.artifacts_added} artifact(s) "
          f"({report.artifacts_present} already present)")
    return EXIT_OK


def register(subparsers: Any) -> None:
    p = add_command(subparsers, "export", _export,
                    help="write runs and artifacts as JSON Lines",
                    description="Write every run (or one, with --run, and only the artifacts "
                                "it references) as JSON Lines: a header, artifacts (base64), "
                                "the events in the interchange form, an end line. Importing "
                                "it into an empty file and exporting again gives the same "
                                "bytes.",
                    example="mfm-store export --db runs.db -o runs.jsonl\n"
                            "mfm-store export --db runs.db --run 3f2b8c1e > one-run.jsonl")
    p.add_argument("--run", metavar="RUN", help="export only this run (id or unique prefix)")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="write to FILE (replaced once complete) instead of stdout")

    p = add_command(subparsers, "import", _import,
                    help="import an export (idempotent; creates the database if needed)",
                    description="Import an export into the database (created if missing). The "
                                "whole export is checked first; nothing is written if it is "
                                "malformed, truncated, or holds a run that differs from the "
                                "one in the database. Runs already present are skipped, so "
                                "importing twice is harmless. FILE '-' reads standard input.",
                    example="mfm-store import --db copy.db runs.jsonl\n"
                            "mfm-store export --db a.db | mfm-store import --db b.db -")
    p.add_argument("file", metavar="FILE", help="the export to read ('-' for stdin)")
