"""``export`` and ``import``: JSON Lines in the interchange form (see ``mfm_store.transfer``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import IO, Any

from ..transfer import CODE_EXPORT_MALFORMED, ImportReport, export_jsonl, import_jsonl
from ._common import (
    EXIT_FILE,
    EXIT_OK,
    MEMORY,
    CliError,
    add_command,
    check_database_file,
    db_text,
    is_path_target,
    open_existing,
    open_target,
    progress_bar,
    resolve_run,
    shown_target,
)
from ._files import (
    check_stdout_is_not,
    discard_database,
    new_file_target,
    open_input,
    output_file,
    place_new_file,
    sibling_name,
)

__all__ = ["register"]


async def _export(args: argparse.Namespace) -> int:
    db = db_text(args)
    database = Path(db) if is_path_target(db) else None
    if args.output is None and database is not None:
        check_stdout_is_not(database)
    async with open_existing(db) as store, progress_bar() as progress:
        run_id = None if args.run is None else await resolve_run(store, args.run, db)
        if args.output is None:
            report = await export_jsonl(store, sys.stdout.buffer, run_id=run_id,
                                        progress=progress)
        else:
            with output_file(args.output, force=args.force, database=database) as out:
                report = await export_jsonl(store, out, run_id=run_id, progress=progress)
    if args.output is not None:
        print(f"exported {report.runs} run(s), {report.events} events, {report.artifacts} "
              f"artifacts to {args.output} ({report.bytes} bytes)", file=sys.stderr)
    return EXIT_OK


async def _import_into(target: str | Path, source: IO[bytes]) -> ImportReport:
    store = await open_target(target)
    try:
        async with progress_bar() as progress:
            return await import_jsonl(store, source, progress=progress)
    except RecursionError:
        # json refuses nesting deeper than Python's recursion limit; this is met in the
        # first pass, which writes nothing.
        raise CliError("not a valid mfm_store export: a line is nested too deeply",
                       EXIT_FILE, CODE_EXPORT_MALFORMED) from None
    finally:
        await store.close()


async def _import(args: argparse.Namespace) -> int:
    db = db_text(args)
    # The database file is checked before the input is read.
    created = is_path_target(db) and not check_database_file(Path(db))
    with open_input(args.file) as source:
        if not is_path_target(db):
            # PostgreSQL: the schema is created if missing, in the import's first write.
            # memory: a new store, dropped at the end: the import is a full check.
            report = await _import_into(db, source)
        elif created:
            # Import into a hidden file beside the target, which appears only once the
            # import is complete: a refused or failed import leaves the folder as it was.
            target = new_file_target(db)
            temp = sibling_name(target, ".importing")
            try:
                report = await _import_into(temp, source)
                place_new_file(temp, target, force=False)
            finally:
                discard_database(temp)
        else:
            report = await _import_into(db, source)
    where = f"{db} (new file)" if created else shown_target(db)
    if db == MEMORY:
        print(f"{MEMORY} the export is valid: it would import {report.events_added} events "
              f"({report.runs_added} run(s)) and {report.artifacts_added} artifact(s) into an "
              "empty store; nothing was kept (memory: lasts one command)")
        return EXIT_OK
    if not report.changed:
        print(f"{where}: nothing to import, the store already holds everything "
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
                                "bytes. With -o, FILE must not exist (unless --force) and "
                                "appears only once complete; the database and its -wal/-shm "
                                "are never written, even with --force.",
                    example="mfm-store export --db runs.db -o runs.jsonl\n"
                            "mfm-store export --db runs.db -o runs.jsonl --force\n"
                            "mfm-store export --db runs.db --run 3f2b8c1e > one-run.jsonl\n"
                            "mfm-store export --db postgresql://app@centre/prod -o prod.jsonl")
    p.add_argument("--run", metavar="RUN", help="export only this run (id or unique prefix)")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="write to FILE instead of stdout; it appears only once complete")
    p.add_argument("--force", action="store_true",
                   help="replace FILE if it exists (never the database itself)")

    p = add_command(subparsers, "import", _import,
                    help="import an export (idempotent; creates the database if needed)",
                    description="Import an export into the database (a file or a PostgreSQL "
                                "schema, created if missing; into memory: the export is only "
                                "checked, as a dry run, and nothing is kept). The "
                                "whole export is checked first; nothing is written if it is "
                                "malformed, truncated, or holds a run that differs from the "
                                "one in the database; a new database file appears only "
                                "once the import is complete. Runs already present are "
                                "skipped, so importing twice is harmless. FILE '-' reads "
                                "standard input.",
                    example="mfm-store import --db copy.db runs.jsonl\n"
                            "mfm-store export --db a.db | mfm-store import --db b.db -\n"
                            "mfm-store import --db postgresql://app@centre/prod runs.jsonl\n"
                            "mfm-store import --db memory: runs.jsonl   # only check it")
    p.add_argument("file", metavar="FILE", help="the export to read ('-' for stdin)")
