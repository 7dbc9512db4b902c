"""Retention soak: ``python -m benchmarks.retention_soak [--seconds 90] [--every 50]``.

Records runs continuously on one SQLite file (each: a fact, an output artifact of
``--artifact`` bytes, ``--events`` events in appends of 5, then ``RunCompleted``) and prunes
after every ``--every`` runs, keeping the last ``--every`` finished runs. Prints, each
``--sample`` seconds: runs recorded so far, events appended per second in that window, the
file and ``-wal`` sizes and the free-page count; then the figures the README quotes (file size
range over the second half, append rate first vs last quarter, prune durations).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from mfm_store import ArtifactKind, DomainEvent, EventEnvelope, RunCompleted, RunId, RunStatus
from mfm_store.sqlite import SqliteStore


def _sizes(path: Path) -> tuple[int, int, int]:
    wal = Path(f"{path}-wal")
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
    finally:
        conn.close()
    return path.stat().st_size, wal.stat().st_size if wal.exists() else 0, int(free)


async def soak(path: Path, seconds: float, every: int, events: int, artifact: int,
               sample: float) -> dict[str, object]:
    rows: list[dict[str, float]] = []
    prunes: list[float] = []
    runs = appended = 0
    start = last_t = time.perf_counter()
    last_n = 0
    async with SqliteStore.open(path, durability="normal") as store:
        while time.perf_counter() - start < seconds:
            run = RunId.new()
            out = await store.put(ArtifactKind.OUTPUT, os.urandom(artifact))
            await store.record_fact(run, "input", json.dumps({"run": str(run)}).encode())
            head = 1
            while head < events:
                n = min(5, events - head)
                envs = [EventEnvelope(run, head + i, None,
                                      DomainEvent("step", {"i": head + i}, payload_ref=out))
                        for i in range(1, n + 1)]
                head = await store.append(run, head, envs)
            await store.append(run, head, [EventEnvelope(run, head + 1, None,
                                                         RunCompleted(RunStatus.COMPLETED))])
            appended += events + 1
            runs += 1
            if runs % every == 0:
                t0 = time.perf_counter()
                await store.prune(keep_last=every, artifact_min_age_seconds=0)
                prunes.append(time.perf_counter() - t0)
            now = time.perf_counter()
            if now - last_t >= sample:
                size, wal, free = _sizes(path)
                rows.append({"t": round(now - start, 1), "runs": runs,
                             "events_per_s": round((appended - last_n) / (now - last_t)),
                             "file_kib": size // 1024, "wal_kib": wal // 1024, "free": free})
                print(json.dumps(rows[-1]), flush=True)
                last_t, last_n = now, appended
    half = [r["file_kib"] for r in rows[len(rows) // 2:]]
    q = max(1, len(rows) // 4)
    return {"runs": runs, "events": appended, "samples": len(rows),
            "file_kib_second_half_min_max": [min(half), max(half)],
            "file_kib_max_overall": max(r["file_kib"] for r in rows),
            "events_per_s_first_quarter": round(statistics.mean(
                r["events_per_s"] for r in rows[:q])),
            "events_per_s_last_quarter": round(statistics.mean(
                r["events_per_s"] for r in rows[-q:])),
            "prunes": len(prunes),
            "prune_ms_median": round(1000 * statistics.median(prunes), 1) if prunes else None,
            "prune_ms_max": round(1000 * max(prunes), 1) if prunes else None}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=90.0)
    p.add_argument("--every", type=int, default=50)
    p.add_argument("--events", type=int, default=40)
    p.add_argument("--artifact", type=int, default=4096)
    p.add_argument("--sample", type=float, default=5.0)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = asyncio.run(soak(Path(tmp) / "soak.db", args.seconds, args.every, args.events,
                                  args.artifact, args.sample))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
