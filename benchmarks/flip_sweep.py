"""Flip one byte at a time in a small real store file and check that nothing goes unnoticed.

For each flip: either the open is refused with a coded error, or ``verify()`` reports a
problem, or every public read returns exactly what it returned before the flip. A flip for which
none holds is *undetected*: a read changed while ``verify()`` said ok. There must be none.

    python -m benchmarks.flip_sweep                 # every byte of the file (some minutes)
    python -m benchmarks.flip_sweep --per-kind 50   # a sample of each page kind

The test suite runs a sample (``tests/test_flip_sweep.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from mfm_store import (
    ArtifactKind,
    DomainEvent,
    EventEnvelope,
    MfmError,
    RunCompleted,
    RunId,
    RunStarted,
    RunStatus,
    StateCompleted,
    StateEntered,
)
from mfm_store.sqlite import SqliteStore

__all__ = ["build_file", "observe", "page_kinds", "sweep", "trial"]


async def build_file(folder: Path) -> Path:
    """A small compacted store (the shape of the demo's): two runs, kernel and domain events,
    JSON and raw facts, and an artifact and an event body long enough for overflow pages."""
    live = folder / "live.db"
    async with SqliteStore.open(live, durability="normal") as store:
        manifest = await store.put(ArtifactKind.MANIFEST, b'{"op_id":"demo","run_config":{}}')
        big = ('{"notes":"' + "lorem ipsum " * 900 + '"}').encode()
        first = await store.put(ArtifactKind.CONTEXT_SNAPSHOT, b"{}")
        second = await store.put(ArtifactKind.CONTEXT_SNAPSHOT, big)
        done, running = RunId.new(), RunId.new()
        for run in (done, running):
            await store.append(run, 0, [
                EventEnvelope(run, 1, None, RunStarted("demo", manifest, first)),
                EventEnvelope(run, 2, 1_700_000_000_000 + run.value.int % 1000,
                              StateEntered("demo.main.fetch", 0, first))])
            await store.record_fact(run, "quote:eur", b'{"price":42,"currency":"EUR"}')
            await store.record_fact(run, f"mfm:random_bytes|run:{run}|ord:0", bytes(range(16)))
            head = await store.head_seq(run)
            await store.append(run, head, [
                EventEnvelope(run, head + 1, None, DomainEvent("progress", {"step": 1})),
                EventEnvelope(run, head + 2, None, DomainEvent("log", {"text": "x" * 5000})),
                EventEnvelope(run, head + 3, None, StateCompleted("demo.main.fetch", second))])
        head = await store.head_seq(done)
        await store.append(done, head, [
            EventEnvelope(done, head + 1, None, RunCompleted(RunStatus.COMPLETED, second))])
        small = folder / "small.db"
        await store.backup(small)
    return small


async def observe(path: Path, runs: list[RunId] | None = None,
                  artifacts: list[str] | None = None) -> Any:
    """Everything the public read API returns for the file (read-only)."""
    async with SqliteStore.open(path, read_only=True) as store:
        summaries = await store.list_runs()
        run_ids = sorted({*(runs or []), *(s.run_id for s in summaries)}, key=str)
        listed = [(str(s.run_id), s.op_id, s.status, s.head_seq, s.created_millis,
                   s.updated_millis) for s in summaries]
        per_run = {}
        for run in run_ids:
            events = [e.to_json() for e in await store.read_range(run)]
            streamed = [e.to_json() async for e in store.iter_events(run, page_size=3)]
            facts = await store.facts(run)
            one_by_one = {k: await store.get_fact(run, k) for k in facts}
            per_run[str(run)] = (await store.head_seq(run), events, streamed, facts, one_by_one)
        stored = [(aid, kind.to_json(), data) async for aid, kind, data in
                  store.iter_artifacts()]
        ids = sorted({*(artifacts or []), *(a for a, _, _ in stored)})
        got = {aid: (await store.exists(aid), await store.get(aid) if await store.exists(aid)
                     else None) for aid in ids}
        stats = await store.stats()
        counts = {k: v for k, v in stats.items() if k not in ("file_bytes", "wal_bytes")}
    return listed, per_run, stored, got, counts


def page_kinds(path: Path) -> dict[str, list[int]]:
    """Page numbers of each kind: ``header`` (page 1), ``schema``, ``table``, ``index``,
    ``overflow``, ``other`` (free pages, pointer maps)."""
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro&immutable=1", uri=True)
    try:
        indexes = {n for (n,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index'")}
        kinds: dict[str, list[int]] = {"schema": [], "table": [], "index": [], "overflow": []}
        seen = set()
        for name, page, pagetype in conn.execute("SELECT name, pageno, pagetype FROM dbstat"):
            seen.add(page)
            if pagetype == "overflow":
                kinds["overflow"].append(page)
            elif name in ("sqlite_schema", "sqlite_master"):
                kinds["schema"].append(page)
            elif name in indexes:
                kinds["index"].append(page)
            else:
                kinds["table"].append(page)
        total = conn.execute("PRAGMA page_count").fetchone()[0]
    finally:
        conn.close()
    kinds["other"] = [p for p in range(1, total + 1) if p not in seen]
    return kinds


async def trial(original: bytes, offset: int, mask: int, work: Path, baseline: Any,
                runs: list[RunId], artifacts: list[str]) -> tuple[str, str]:
    """Flip ``original[offset]`` by xor ``mask``; returns ``(outcome, detail)`` with outcome
    ``refused``, ``reported``, ``harmless`` or ``undetected``."""
    target = work / "flipped.db"
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    data = bytearray(original)
    data[offset] ^= mask
    target.write_bytes(bytes(data))
    try:
        async with SqliteStore.open(target, read_only=True) as store:
            report = await store.verify()
    except MfmError as exc:
        return "refused", f"{exc.info.code}: {exc}"
    except Exception as exc:  # not a coded error: a finding in itself
        return "undetected", f"uncoded {type(exc).__name__} on open/verify: {exc}"
    if not report.ok:
        return "reported", str(report.problems[0])
    try:
        seen = await observe(target, runs, artifacts)
    except Exception as exc:
        return "undetected", f"verify ok, then a read raised {type(exc).__name__}: {exc}"
    if seen != baseline:
        return "undetected", "verify ok, yet a read returned something else"
    return "harmless", ""


async def sweep(path: Path, offsets: list[tuple[str, int]], *, seed: int = 11,
                progress: bool = False) -> tuple[Counter[str], list[str]]:
    """Run a trial per ``(page kind, offset)``; returns the outcome counts and the findings."""
    original = path.read_bytes()
    baseline = await observe(path)
    runs = [RunId.parse(r) for r in baseline[1]]
    artifacts = list(baseline[3])
    rng = random.Random(seed)
    counts: Counter[str] = Counter()
    findings: list[str] = []
    with tempfile.TemporaryDirectory(prefix="mfm-flip-") as tmp:
        work = Path(tmp)
        started = time.monotonic()
        for i, (kind, offset) in enumerate(offsets, start=1):
            mask = rng.randrange(1, 256)
            outcome, detail = await trial(original, offset, mask, work, baseline, runs,
                                          artifacts)
            counts[outcome] += 1
            counts[f"{kind}:{outcome}"] += 1
            if outcome == "undetected":
                findings.append(f"{kind} page, offset {offset}, xor {mask:#04x}: {detail}")
            if progress and i % 500 == 0:
                rate = i / (time.monotonic() - started)
                print(f"  {i}/{len(offsets)} flips ({rate:.0f}/s), "
                      f"undetected so far: {counts['undetected']}", file=sys.stderr)
    return counts, findings


def offsets_of(path: Path, per_kind: int | None, seed: int = 7) -> list[tuple[str, int]]:
    """Every byte (``per_kind`` None) or ``per_kind`` sampled bytes of each page kind."""
    size = path.stat().st_size
    header = path.read_bytes()[:100]
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    kind_of: dict[int, str] = {}
    for kind, pages in page_kinds(path).items():
        for page in pages:
            kind_of[page] = kind
    every = [("header" if off < 100 else kind_of.get(off // page_size + 1, "other"), off)
             for off in range(size)]
    if per_kind is None:
        return every
    rng = random.Random(seed)
    chosen: list[tuple[str, int]] = []
    for kind in ("header", "schema", "table", "index", "overflow", "other"):
        pool = [item for item in every if item[0] == kind]
        chosen += rng.sample(pool, min(per_kind, len(pool)))
    return chosen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.flip_sweep",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-kind", type=int, default=None,
                        help="flip this many sampled bytes per page kind (default: every byte)")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args(argv)

    async def run() -> int:
        with tempfile.TemporaryDirectory(prefix="mfm-flip-src-") as tmp:
            path = await build_file(Path(tmp))
            kept = Path(tmp) / "kept.db"
            shutil.copyfile(path, kept)
            kinds = page_kinds(kept)
            print(f"file: {kept.stat().st_size} bytes, pages by kind: "
                  + ", ".join(f"{k} {len(v)}" for k, v in kinds.items()))
            offsets = offsets_of(kept, args.per_kind)
            started = time.monotonic()
            counts, findings = await sweep(kept, offsets, seed=args.seed, progress=True)
        elapsed = time.monotonic() - started
        detected = counts["refused"] + counts["reported"]
        print(f"flips tried: {len(offsets)} in {elapsed:.0f} s")
        print(f"reported:    {detected} (open refused {counts['refused']}, "
              f"verify reported {counts['reported']})")
        print(f"harmless:    {counts['harmless']}")
        print(f"undetected:  {counts['undetected']}")
        for kind in ("header", "schema", "table", "index", "overflow", "other"):
            row = [counts[f"{kind}:{o}"] for o in ("refused", "reported", "harmless",
                                                    "undetected")]
            if any(row):
                print(f"  {kind:9} refused {row[0]:6}  reported {row[1]:6}  "
                      f"harmless {row[2]:6}  undetected {row[3]}")
        for finding in findings[:20]:
            print("UNDETECTED " + finding)
        return 1 if counts["undetected"] else 0

    return asyncio.run(run())


if __name__ == "__main__":
    raise SystemExit(main())
