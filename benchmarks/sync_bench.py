"""Push/pull benchmark: ``python -m benchmarks.sync_bench [--runs 1000] [--events 100]``.

Runs on its own. Measured in one run (ratios first; absolute figures drift on a shared
machine), destinations at ``durability="full"``:

- ``push_file``: ``sync`` of R runs of E events (each with 10 facts, a context snapshot per
  state, a shared manifest) from one SQLite file into a new one, against ``export_jsonl`` to
  a file plus ``import_jsonl`` of it into a new file (the only way before sync), same runs;
- ``push_postgres``: the same sync into a fresh schema on a PostgreSQL server (a throwaway
  one from ``tests/helpers/pg_server.py`` unless ``--dsn``), beside it;
- ``push_file_proposed``: the file-to-file sync again, with the batched artifact methods this
  benchmark proposes for the stores (``missing(ids)`` on the destination and a one-query
  ``iter_artifacts(ids)`` on the source, prototyped here on a ``SqliteStore`` subclass):
  what the sync costs once the backends have them;
- ``resync``: a repeated sync with nothing changed, of the R-run store and of a store of
  ``--many`` runs (10k), against the time of ``list_runs()`` on both sides (the heads query it
  is built on), and a sync after 10 of the ``--many`` runs got new events.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

from mfm_store import (
    ArtifactKind,
    DomainEvent,
    Event,
    EventEnvelope,
    RunCompleted,
    RunId,
    RunStarted,
    RunStatus,
    StateCompleted,
    StateEntered,
    Store,
    canonical_json_bytes,
)
from mfm_store.errors import CorruptionError
from mfm_store.ids import ArtifactId
from mfm_store.sqlite import SqliteStore
from mfm_store.sync import sync
from mfm_store.transfer import export_jsonl, import_jsonl

from . import raw as cs  # the row checksums as the README defines them

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = canonical_json_bytes({"op": "bench", "states": 44})


async def _seed_run(store: Store, events: int, manifest: str) -> RunId:
    """One run of exactly ``events`` events (at least 13): RunStarted, 10 fact_recorded,
    states entered/completed with a new snapshot each, RunCompleted."""
    run = RunId.new()
    pairs = (events - 12) // 2
    snaps = [canonical_json_bytes({"run": str(run), "state": i, "pad": "x" * 200})
             for i in range(pairs + 1)]
    facts = [canonical_json_bytes({"price": i, "run": str(run)}) for i in range(10)]
    snap_ids = await asyncio.gather(*(store.put(ArtifactKind.CONTEXT_SNAPSHOT, s)
                                      for s in snaps))
    fact_ids = await asyncio.gather(*(store.put(ArtifactKind.FACT_PAYLOAD, f) for f in facts))
    evs: list[Event] = [RunStarted("bench", manifest, snap_ids[0])]
    evs += [DomainEvent("fact_recorded", {"key": f"k{i}", "payload_id": pid, "meta": {}},
                        None) for i, pid in enumerate(fact_ids)]
    for i in range(pairs):
        evs += [StateEntered(f"m.main.s{i}", 0, snap_ids[i]),
                StateCompleted(f"m.main.s{i}", snap_ids[i + 1])]
    while len(evs) < events - 1:
        evs.append(DomainEvent("note", {"i": len(evs)}, None))
    evs.append(RunCompleted(RunStatus.COMPLETED, snap_ids[-1]))
    await store.append(run, 0, [EventEnvelope(run, i + 1, None, e) for i, e in enumerate(evs)])
    return run


async def seed(path: Path, runs: int, events: int) -> list[RunId]:
    async with SqliteStore.open(path, durability="normal") as store:
        manifest = await store.put(ArtifactKind.MANIFEST, MANIFEST)
        ids: list[RunId] = []
        for start in range(0, runs, 50):
            ids += await asyncio.gather(*(_seed_run(store, events, manifest)
                                          for _ in range(min(50, runs - start))))
        return ids


_MISSING_SQL = ("SELECT j.value FROM json_each(?) AS j"
                " WHERE NOT EXISTS (SELECT 1 FROM artifacts AS a WHERE a.id = j.value)")
_ARTIFACTS_SQL = ("SELECT id, kind, size, checksum, data FROM artifacts"
                  " WHERE id IN (SELECT value FROM json_each(?)) ORDER BY id")


class ProposedSqlite(SqliteStore):
    """A prototype of the batched artifact methods proposed for the stores (one query per
    call), on the store's private reader; for this benchmark only."""

    async def missing(self, artifact_ids: Iterable[ArtifactId]) -> set[ArtifactId]:
        ids = list(artifact_ids)
        rows = await self._fetchall(_MISSING_SQL, (json.dumps(ids),)) if ids else []
        return {ArtifactId(r[0]) for r in rows}

    async def iter_artifacts(self, ids: Iterable[str] | None = None
                             ) -> AsyncIterator[tuple[ArtifactId, ArtifactKind, bytes]]:
        assert ids is not None
        wanted = sorted(set(ids))
        for i in range(0, len(wanted), 64):
            rows = await self._fetchall(_ARTIFACTS_SQL, (json.dumps(wanted[i:i + 64]),))
            for aid, kind, size, stored, data in rows:
                if cs.artifact_sum(aid, kind, size, data) != stored:
                    raise CorruptionError(f"artifact {aid} fails its checksum")
                yield ArtifactId(aid), ArtifactKind.parse(kind), bytes(data)


async def push_file_proposed(src_path: Path, work: Path) -> dict[str, Any]:
    async with ProposedSqlite.open(src_path, read_only=True) as src, \
            ProposedSqlite.open(work / "proposed_dst.db") as dst:
        t_sync, report = await _timed_sync(src, dst)
    return {"events": report["events_copied"], "sync_s": round(t_sync, 3),
            "sync_cpu_s": round(report["cpu_s"], 3),
            "sync_events_per_s": round(report["events_copied"] / t_sync)}


async def _timed_sync(src: Store, dst: Store) -> tuple[float, dict[str, Any]]:
    t0, c0 = time.perf_counter(), time.process_time()
    report = await sync(src, dst)
    elapsed = time.perf_counter() - t0
    assert report.ok, report
    out = report.to_json()
    out["cpu_s"] = time.process_time() - c0
    return elapsed, out


async def push_file(src_path: Path, work: Path) -> dict[str, Any]:
    async with SqliteStore.open(src_path, read_only=True) as src:
        async with SqliteStore.open(work / "sync_dst.db") as dst:
            t_sync, report = await _timed_sync(src, dst)
            batched = hasattr(dst, "missing")
        t0, c0 = time.perf_counter(), time.process_time()
        with open(work / "export.jsonl", "w+b") as out:
            await export_jsonl(src, out)
            t_export = time.perf_counter() - t0
            async with SqliteStore.open(work / "import_dst.db") as dst:
                imported = await import_jsonl(dst, out)
        t_ei, c_ei = time.perf_counter() - t0, time.process_time() - c0
    events = report["events_copied"]
    assert imported.events_added == events
    return {"events": events, "artifacts": report["artifacts_copied"],
            "sync_s": round(t_sync, 3), "export_import_s": round(t_ei, 3),
            "export_s": round(t_export, 3),
            "sync_events_per_s": round(events / t_sync),
            "export_import_events_per_s": round(events / t_ei),
            "ratio_sync_vs_export_import": round(t_ei / t_sync, 2),
            "sync_cpu_s": round(report["cpu_s"], 3), "export_import_cpu_s": round(c_ei, 3),
            "cpu_ratio_sync_vs_export_import": round(c_ei / report["cpu_s"], 2),
            "destination_has_batched_missing": batched}


async def push_postgres(src_path: Path, dsn: str) -> dict[str, Any]:
    from mfm_store.postgres import PostgresStore

    async with SqliteStore.open(src_path, read_only=True) as src, \
            PostgresStore.open(dsn, schema=f"bench_{uuid.uuid4().hex[:12]}") as dst:
        t_sync, report = await _timed_sync(src, dst)
        t_again, again = await _timed_sync(src, dst)
        t_heads = await _heads_time(src, dst)
    return {"events": report["events_copied"], "sync_s": round(t_sync, 3),
            "sync_cpu_s": round(report["cpu_s"], 3),
            "sync_events_per_s": round(report["events_copied"] / t_sync),
            "resync_unchanged_s": round(t_again, 4),
            "list_runs_both_sides_s": round(t_heads, 4),
            "resync_events_copied": again["events_copied"]}


async def _heads_time(src: Store, dst: Store, reps: int = 5) -> float:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        await asyncio.gather(src.list_runs(), dst.list_runs())
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


async def resync(src_path: Path, dst_path: Path, runs: list[RunId] | None,
                 reps: int = 5) -> dict[str, Any]:
    """Time a sync with nothing to copy (median of ``reps``) and the heads query alone; with
    ``runs``, then 10 of them get new events and one more sync is timed."""
    async with SqliteStore.open(src_path) as src, SqliteStore.open(dst_path) as dst:
        first = time.perf_counter()
        await _timed_sync(src, dst)
        first = time.perf_counter() - first
        times = []
        for _ in range(reps):
            t, report = await _timed_sync(src, dst)
            assert report["events_copied"] == 0
            times.append(t)
        heads = await _heads_time(src, dst)
        out = {"runs": len(await src.list_runs()), "first_sync_s": round(first, 3),
               "resync_unchanged_s": round(statistics.median(times), 4),
               "list_runs_both_sides_s": round(heads, 4),
               "resync_minus_heads_ms": round((statistics.median(times) - heads) * 1000, 2)}
        if runs:
            for run in runs[:10]:
                head = await src.head_seq(run)
                await src.append(run, head, [EventEnvelope(
                    run, head + 1 + i, None, DomainEvent("more", {"i": i}, None))
                    for i in range(5)])
            t, report = await _timed_sync(src, dst)
            out["resync_10_changed_s"] = round(t, 4)
            out["resync_10_changed_events"] = report["events_copied"]
        return out


def _server() -> Any:
    sys.path.insert(0, str(ROOT / "tests"))
    from helpers.pg_server import PgServer

    return PgServer.start()


async def run_all(args: argparse.Namespace, dsn: str | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="sync_bench_") as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        await seed(work / "src.db", args.runs, args.events)
        results: dict[str, Any] = {"seed_s": round(time.perf_counter() - t0, 1),
                                   "runs": args.runs, "events_per_run": args.events}
        results["push_file"] = await push_file(work / "src.db", work)
        proposed = await push_file_proposed(work / "src.db", work)
        proposed["ratio_vs_export_import"] = round(
            results["push_file"]["export_import_s"] / proposed["sync_s"], 2)
        proposed["cpu_ratio_vs_export_import"] = round(
            results["push_file"]["export_import_cpu_s"] / proposed["sync_cpu_s"], 2)
        results["push_file_proposed"] = proposed
        if dsn is not None:
            results["push_postgres"] = await push_postgres(work / "src.db", dsn)
        results["resync_small"] = await resync(work / "src.db", work / "sync_dst.db", None)
        many = await seed(work / "many.db", args.many, 13)
        results["resync_many"] = await resync(work / "many.db", work / "many_dst.db", many)
        return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sync_bench",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--events", type=int, default=100)
    parser.add_argument("--many", type=int, default=10_000,
                        help="runs of the store re-synced with nothing changed")
    parser.add_argument("--dsn", help="PostgreSQL server (default: start a throwaway one)")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    server = None if (args.dsn or args.no_postgres) else _server()
    try:
        dsn = None if args.no_postgres else (args.dsn or server.dsn)
        results = asyncio.run(run_all(args, dsn))
    finally:
        if server is not None:
            server.stop()
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
