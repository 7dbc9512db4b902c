"""Reading commands: ``runs``, ``show``, ``facts``, ``artifact``. They open the file read-only."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..engine.fork import ForkOrigin, fork_origin
from ..errors import CODE_INVALID_ID, CODE_RUN_NOT_FOUND
from ..events import (
    DOMAIN_FACT_RECORDED,
    DomainEvent,
    Event,
    EventEnvelope,
    RunCompleted,
    RunStarted,
    StateCompleted,
    StateEntered,
    StateFailed,
)
from ..ids import ArtifactId, RunId
from ..stores import RunSummary, Store, iter_runs
from ..transfer import json_line
from ._common import (
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    add_command,
    db_text,
    is_path_target,
    iso_millis,
    open_existing,
    print_json,
    resolve_run,
    seq_arg,
)
from ._files import check_stdout_is_not, output_file

__all__ = ["describe", "register"]

_PAYLOAD_WIDTH = 100
_RUNS_PAGE = 1000  # runs read per list_runs call


def _id(value: str | None, full: bool) -> str:
    if value is None:
        return "-"
    return value if full else value[:12] + "…"


def describe(event: Event, *, full_ids: bool = False) -> tuple[str, str]:
    """``(label, text)``: one readable line for an event."""
    def aid(value: str | None) -> str:
        return _id(value, full_ids)

    if isinstance(event, RunStarted):
        return "RunStarted", (f"op {event.op_id}, manifest {aid(event.manifest_id)}, "
                              f"initial context {aid(event.initial_snapshot_id)}")
    if isinstance(event, StateEntered):
        return "StateEntered", (f"{event.state_id} attempt {event.attempt}, "
                                f"from {aid(event.base_snapshot_id)}")
    if isinstance(event, StateCompleted):
        return "StateCompleted", f"{event.state_id} -> {aid(event.context_snapshot_id)}"
    if isinstance(event, StateFailed):
        info = event.error.info
        retry = "retryable" if info.retryable else "not retryable"
        return "StateFailed", (f"{event.state_id}: [{info.code}] {info.message} "
                               f"({info.category.value}, {retry})")
    if isinstance(event, RunCompleted):
        return "RunCompleted", f"{event.status.value}, final context {aid(event.final_snapshot_id)}"
    payload = event.payload
    if event.name == DOMAIN_FACT_RECORDED and isinstance(payload, dict):
        return event.name, f"{payload.get('key')} = {aid(str(payload.get('payload_id')))}"
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    if len(text) > _PAYLOAD_WIDTH:
        text = text[:_PAYLOAD_WIDTH - 1] + "…"
    if event.payload_ref is not None:
        text += f" ref {aid(event.payload_ref)}"
    return event.name, text


def _line(env: EventEnvelope, full_ids: bool) -> str:
    label, text = describe(env.event, full_ids=full_ids)
    at = "" if env.ts_millis is None else f"  @ {iso_millis(env.ts_millis)}"
    kind = label if not isinstance(env.event, DomainEvent) else f"· {label}"
    return f"{env.seq:>6}  {kind:<17} {text}{at}"


async def _runs(args: argparse.Namespace) -> int:
    """Runs oldest first, printed a page at a time as they are read (bounded memory)."""
    out = sys.stdout
    shown = 0
    async with open_existing(db_text(args)) as store:
        async for r in iter_runs(store, page_size=_RUNS_PAGE):
            # A fork records its origin in its first events (run_forked at seq 2): two short
            # reads per run.
            origin = await fork_origin(store, r.run_id)
            if args.json:
                item = json.dumps({"run_id": str(r.run_id), "op_id": r.op_id,
                                   "status": r.status, "events": r.head_seq,
                                   "created_millis": r.created_millis,
                                   "updated_millis": r.updated_millis,
                                   "forked_from": _origin_json(origin)},
                                  ensure_ascii=False, indent=2)
                # The text json.dumps(list, indent=2) writes, one item at a time.
                out.write(("[\n" if not shown else ",\n") + "  " + item.replace("\n", "\n  "))
            else:
                if not shown:
                    out.write(f"{'RUN':<36}  {'OP':<12} {'STATUS':<10} {'EVENTS':>7}  "
                              f"{'UPDATED':<24}  FORKED FROM\n")
                forked = "-" if origin is None else \
                    f"{str(origin.source_run_id)[:8]}@{origin.state_id}"
                out.write(f"{r.run_id!s:<36}  {r.op_id or '-':<12} {r.status:<10} "
                          f"{r.head_seq:>7}  {iso_millis(r.updated_millis):<24}  {forked}\n")
            shown += 1
    if args.json:
        out.write("[]\n" if not shown else "\n]\n")
    elif not shown:
        print("no runs")
    return EXIT_OK


def _origin_json(origin: ForkOrigin | None) -> dict[str, object] | None:
    return None if origin is None else origin.to_json()


async def _show(args: argparse.Namespace) -> int:
    db = db_text(args)
    async with open_existing(db) as store:
        run_id = await resolve_run(store, args.run, db)
        if args.json:
            out = sys.stdout.buffer
            async for env in store.iter_events(run_id, args.from_seq, args.to_seq):
                out.write(json_line(env.to_json()))
            out.flush()
            return EXIT_OK
        summary = await _summary(store, run_id)
        print(f"run {run_id}  op {summary.op_id or '-'}  {summary.status}  "
              f"{summary.head_seq} events")
        origin = await fork_origin(store, run_id)
        if origin is not None:
            print(f"forked from run {origin.source_run_id} at {origin.state_id} (its seq "
                  f"{origin.source_seq}, reuse_facts {origin.reuse_facts})")
        async for env in store.iter_events(run_id, args.from_seq, args.to_seq):
            print(_line(env, args.full_ids))
    return EXIT_OK


async def _summary(store: Store, run_id: RunId) -> RunSummary:
    """The run's row, found by reading the runs a page at a time (bounded memory)."""
    async for r in iter_runs(store, page_size=_RUNS_PAGE, newest_first=True):
        if r.run_id == run_id:
            return r
    raise CliError(f"run {run_id} is not in the store", EXIT_USAGE, CODE_RUN_NOT_FOUND)


def _value(data: bytes) -> tuple[str, Any]:
    """``("value", json)`` for a JSON payload, ``("bytes_hex", hex)`` for raw bytes (and for
    JSON nested too deeply to print)."""
    try:
        return "value", json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError):
        return "bytes_hex", data.hex()


async def _facts(args: argparse.Namespace) -> int:
    db = db_text(args)
    async with open_existing(db) as store:
        run_id = await resolve_run(store, args.run, db)
        facts = dict(sorted((await store.facts(run_id)).items()))
        values = {k: _value(await store.get(pid)) for k, pid in facts.items()} \
            if args.values else {}
    if args.json:
        if args.values:
            print_json({k: {"payload_id": pid, values[k][0]: values[k][1]}
                        for k, pid in facts.items()})
        else:
            print_json(facts)
        return EXIT_OK
    if not facts:
        print(f"run {run_id} has no facts")
        return EXIT_OK
    width = min(max(len(k) for k in facts), 60)
    for key, pid in facts.items():
        if args.values:
            kind, value = values[key]
            shown = (json.dumps(value, ensure_ascii=False, separators=(",", ":"))
                     if kind == "value" else f"<{len(value) // 2} bytes: {value}>")
            print(f"{key:<{width}}  {shown}")
        else:
            print(f"{key:<{width}}  {pid}")
    return EXIT_OK


async def _artifact(args: argparse.Namespace) -> int:
    try:
        artifact_id = ArtifactId(args.id.strip().lower())
    except ValueError as exc:
        raise CliError(f"{exc} (an artifact id is 64 hex characters)", EXIT_USAGE,
                       CODE_INVALID_ID) from None
    db = db_text(args)
    database = Path(db) if is_path_target(db) else None
    if args.output is None and database is not None:
        check_stdout_is_not(database)
    async with open_existing(db) as store:
        if args.output is not None:
            # Checked before reading, so that a refused destination costs nothing.
            with output_file(args.output, force=args.force, database=database) as out:
                out.write(await store.get(artifact_id))
            return EXIT_OK
        data = await store.get(artifact_id)
    if sys.stdout.isatty():
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            raise CliError(f"artifact {artifact_id} is binary ({len(data)} bytes); "
                           "write it to a file with -o FILE", EXIT_USAGE, "binary_output") \
                from None
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()
    return EXIT_OK


def register(subparsers: Any) -> None:
    p = add_command(subparsers, "runs", _runs, help="list the runs in the store",
                    example="mfm-store runs --db runs.db\nmfm-store runs --db runs.db --json")
    p.add_argument("--json", action="store_true", help="print a JSON array")

    p = add_command(subparsers, "show", _show, help="list a run's events, readably",
                    description="List a run's events, one per line (ids shortened; --full-ids "
                                "for whole ids), or with --json as JSON Lines in the interchange "
                                "form. RUN is a run id or a unique prefix of one.",
                    example="mfm-store show 3f2b8c1e --db runs.db\n"
                            "mfm-store show 3f2b8c1e --db runs.db --json | jq .event")
    p.add_argument("run", metavar="RUN", help="run id (or a unique prefix)")
    p.add_argument("--json", action="store_true",
                   help="JSON Lines in the interchange form (one envelope a line)")
    p.add_argument("--full-ids", action="store_true", help="print whole artifact ids")
    p.add_argument("--from", dest="from_seq", type=seq_arg, default=1, metavar="SEQ",
                   help="first seq to show (default 1)")
    p.add_argument("--to", dest="to_seq", type=seq_arg, default=None, metavar="SEQ",
                   help="last seq to show (default: the head)")

    p = add_command(subparsers, "facts", _facts, help="list a run's facts (key -> payload id)",
                    description="List a run's fact bindings, sorted by key: key and payload "
                                "artifact id, or with --values the decoded payload (JSON, or "
                                "raw bytes shown as hex).",
                    example="mfm-store facts 3f2b8c1e --db runs.db --values")
    p.add_argument("run", metavar="RUN", help="run id (or a unique prefix)")
    p.add_argument("--values", action="store_true", help="print decoded payloads")
    p.add_argument("--json", action="store_true", help="print a JSON object keyed by fact key")

    p = add_command(subparsers, "artifact", _artifact,
                    help="write an artifact's bytes to stdout or a file",
                    example="mfm-store artifact 44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e83"
                            "10c060f61caaff8a --db runs.db -o context.json")
    p.add_argument("id", metavar="ID", help="artifact id (64 hex characters)")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="write to FILE instead of stdout; it appears only once complete")
    p.add_argument("--force", action="store_true",
                   help="replace FILE if it exists (never the database itself)")
