"""``python -m benchmarks``: run the scenarios, print a summary, write the reports.

Examples::

    python -m benchmarks                       # full run, a few minutes
    python -m benchmarks --quick               # about a minute
    python -m benchmarks --only append_seq,facts --rounds 9
    python -m benchmarks --smoke --out /tmp/b  # seconds; checks the harness, not the figures
    python -m benchmarks --quick --only facts --cprofile   # where our time goes
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import datetime
import io
import pstats
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

from . import report
from .chart import concurrency_chart
from .context import Context
from .machine import describe, load_average
from .peers import peer_statuses
from .profiles import PROFILES
from .results import ScenarioResult
from .scenarios import SCENARIOS, select

DEFAULT_OUT = Path(__file__).resolve().parent / "results"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="about a minute in all")
    mode.add_argument("--smoke", action="store_true",
                      help="a few seconds: checks that the harness works (figures meaningless)")
    p.add_argument("--only", metavar="A,B", help=f"scenarios to run: {', '.join(SCENARIOS)}")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT,
                   help="folder for report.md, results.json, concurrency.png "
                        "(default: benchmarks/results/)")
    p.add_argument("--rounds", type=int, help="interleaved rounds per scenario")
    p.add_argument("--workdir", type=Path,
                   help="folder on the disk to measure: the database files go to a temporary "
                        "folder inside it, removed at the end (default: --out)")
    p.add_argument("--no-peers", action="store_true", help="skip eventsourcing and DBOS")
    p.add_argument("--cprofile", action="store_true",
                   help="profile our store's measured rounds (not the references') and write "
                        "profile_<scenario>.txt next to the report")
    p.add_argument("--list", action="store_true", help="list the scenarios and exit")
    return p


def _write_profile(profiler: cProfile.Profile, path: Path) -> None:
    stream = io.StringIO()
    stats = pstats.Stats(profiler, stream=stream)
    stats.sort_stats("tottime").print_stats(40)
    stats.sort_stats("cumulative").print_stats(40)
    path.write_text(stream.getvalue(), encoding="utf-8")


async def _run_all(ctx: Context, only: str | None, out: Path,
                   profile: bool) -> list[ScenarioResult]:
    results = []
    for scenario in select(only):
        ctx.profiler = cProfile.Profile() if profile else None
        print(f"[{scenario.id}] {scenario.title} ...", file=sys.stderr, flush=True)
        start = time.perf_counter()
        try:
            result = await scenario.run(ctx)
        except Exception:
            result = ScenarioResult(scenario.id, scenario.title, "", error=traceback.format_exc())
            print(result.error, file=sys.stderr)
        result.seconds = time.perf_counter() - start
        print(f"[{scenario.id}] done in {result.seconds:.1f} s", file=sys.stderr, flush=True)
        if ctx.profiler is not None:
            _write_profile(ctx.profiler, out / f"profile_{scenario.id}.txt")
        results.append(result)
    return results


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.list:
        for s in SCENARIOS.values():
            print(f"{s.id:20} {s.title}")
        return 0
    try:
        select(args.only)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    profile = PROFILES["smoke" if args.smoke else "quick" if args.quick else "full"]
    if args.rounds:
        from dataclasses import replace

        profile = replace(profile, rounds=args.rounds)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    base: Path = args.workdir or out
    base.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix=".work-", dir=base))
    peers = peer_statuses()
    ctx = Context(profile, workdir, peers, use_peers=not args.no_peers)
    meta = {"mode": profile.name, "rounds": profile.rounds, "warmup": profile.warmup,
            "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "argv": sys.argv[1:] if argv is None else argv, "use_peers": not args.no_peers,
            "cprofile": args.cprofile,
            "load_before": load_average()}
    machine = describe(workdir)
    start = time.perf_counter()
    try:
        results = asyncio.run(_run_all(ctx, args.only, out, args.cprofile))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    meta["seconds"] = time.perf_counter() - start
    meta["load_after"] = load_average()
    chart = concurrency_chart(results, out / "concurrency.png")
    meta["chart"] = chart.name if chart else None
    report.write_json(out / "results.json", report.build_json(meta, machine, peers, results))
    report.write_markdown(out / "report.md", meta, machine, peers, results, chart)
    print(report.summary_table(results))
    skipped = [f"{n}: {p.reason}" for n, p in peers.items() if not p.available]
    if args.no_peers:
        skipped = ["eventsourcing, dbos: --no-peers"]
    for line in skipped:
        print(f"peer skipped — {line}")
    print(f"report: {out / 'report.md'}")
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
