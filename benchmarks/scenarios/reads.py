"""Reading back: cold open of a copied file with a 10k-event run, and streaming a long run."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from pathlib import Path

from mfm_store.canonical import canonical_json_bytes
from mfm_store.events import EventEnvelope
from mfm_store.facts import FactIndex
from mfm_store.ids import RunId
from mfm_store.sqlite import SqliteStore
from mfm_store.stores import ArtifactKind

from ..context import Context
from ..harness import Finding, Sample, Side, Stopwatch, Target
from ..raw import load_run
from ..results import ScenarioResult
from ..workload import bench_event, envelopes, fact_answer, fact_recorded
from ._base import Scenario, ratio

__all__ = ["SCENARIOS", "build_run"]

_NEIGHBOURS = 3

async def build_run(path: Path, events: int, facts: int, *, neighbours: int = 0,
                    batch: int = 1000) -> RunId:
    """Write one run of ``events`` events, ``facts`` of them ``fact_recorded`` (spread evenly,
    each with its payload artifact, so the binding table is filled too), then close the file.

    With ``neighbours``, that many other runs are written alongside, one ``batch`` of each after
    every batch of the measured run, as concurrent workflows leave a file.
    """
    run_id = RunId.new()
    others = [RunId.new() for _ in range(neighbours)]
    every = events // facts if facts else 0
    async with SqliteStore.open(path, durability="normal") as store:
        envs: list[EventEnvelope] = []
        for seq in range(1, events + 1):
            if every and seq % every == 0 and seq // every <= facts:
                pid = await store.put(ArtifactKind.FACT_PAYLOAD,
                                      canonical_json_bytes(fact_answer(seq)))
                envs.append(fact_recorded(run_id, seq, f"quote:{seq}", pid))
            else:
                envs.append(EventEnvelope(run_id, seq, None, bench_event(seq)))
            if len(envs) == batch or seq == events:
                await store.append(run_id, envs[0].seq - 1, envs)
                for other in others:
                    await store.append(other, envs[0].seq - 1,
                                       envelopes(other, envs[0].seq - 1, len(envs)))
                envs = []
    return run_id


async def cold_load(ctx: Context) -> ScenarioResult:
    p = ctx.profile
    res = ScenarioResult(
        "cold_load", f"Cold open of a copied file + load of a {p.cold_events}-event run",
        f"A file with one run of {p.cold_events} events ({p.cold_facts} of them fact bindings), "
        f"written in batches of 100 interleaved with {_NEIGHBOURS} other runs of the same size, is "
        "copied fresh before every round (untimed; OS caches cannot be dropped here, so the "
        "copy sits in the page cache). Timed: ours = SqliteStore.open(read_only=True) + "
        "read_range (checksums, decode, EventEnvelope objects) + FactIndex.from_store + close; "
        "raw = sqlite3.connect + SELECT + cbor2.loads of every body + SELECT of the bindings. "
        "ours_backup loads a copy of a file made by SqliteStore.backup (each run stored "
        "together) instead.")
    source, compact = ctx.path("source"), ctx.path("backup")
    run_id = await build_run(source, p.cold_events, p.cold_facts, neighbours=_NEIGHBOURS,
                             batch=100)
    async with SqliteStore.open(source) as store:
        await store.backup(compact)

    def fresh_copy(tag: str, original: Path = source) -> Path:
        dest = ctx.path(tag)
        shutil.copyfile(original, dest)
        return dest

    async def load(path: Path) -> Sample:
        sw = Stopwatch()
        with sw.timing():
            async with SqliteStore.open(path, read_only=True) as store:
                events = await store.read_range(run_id)
                index = await FactIndex.from_store(store, run_id)
        assert len(events) == p.cold_events and len(await index.snapshot()) == p.cold_facts
        return sw.sample(len(events))

    async def ours(_r: int) -> Sample:
        return await load(fresh_copy("ours"))

    async def ours_backup(_r: int) -> Sample:
        return await load(fresh_copy("ours_backup", compact))

    async def raw(_r: int) -> Sample:
        path = fresh_copy("raw")
        sw = Stopwatch()
        with sw.timing():
            events, facts = load_run(path, str(run_id))
        assert len(events) == p.cold_events and len(facts) == p.cold_facts
        return sw.sample(len(events))

    sides = [Side("ours", "open read-only + read_range + FactIndex", "events", ours),
             Side("raw", "sqlite3 + cbor2.loads + bindings", "events", raw),
             Side("ours_backup", "the same, on a copy of a backup() file", "events",
                  ours_backup)]
    samples = await ctx.measure(sides)
    res.add_sides(sides, samples)
    res.findings.append(ratio(samples, "ours", "raw", "load time, ours over raw (lower is better)",
                              Target("<=", 2), metric="seconds"))
    res.findings.append(ratio(samples, "ours_backup", "ours",
                              "load time from a backup (runs stored together) over a plain copy",
                              metric="seconds"))
    return res


async def _child(impl: str, path: Path, run_id: RunId) -> Sample:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "benchmarks.stream_child", impl, str(path), str(run_id),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[2])
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"stream_child {impl} failed: {err.decode(errors='replace')[-2000:]}")
    data = json.loads(out)
    return Sample(int(data["events"]), float(data["seconds"]),
                  extra={"peak_rss_mb": data["peak_rss_mb"], "base_rss_mb": data["base_rss_mb"]})


async def stream(ctx: Context) -> ScenarioResult:
    p = ctx.profile
    res = ScenarioResult(
        "stream", f"Streaming {p.stream_events:,} events with iter_events (peak memory)",
        "Each side runs in a fresh subprocess that streams the whole run and reports its peak "
        "resident set (VmHWM, interpreter included). ours = iter_events(page_size=1000) "
        "yielding checked, decoded EventEnvelopes; raw = one sqlite3 cursor + cbor2.loads.")
    path = ctx.path("stream")
    run_id = await build_run(path, p.stream_events, 0)
    sides = [Side("ours", "SqliteStore.iter_events, subprocess", "events",
                  lambda _r: _child("ours", path, run_id)),
             Side("raw", "sqlite3 cursor + cbor2, subprocess", "events",
                  lambda _r: _child("raw", path, run_id))]
    samples = await ctx.measure(sides, p.stream_rounds, 0)
    res.add_sides(sides, samples)
    res.findings.append(Finding(
        "ours peak RSS", f"peak resident memory while streaming {p.stream_events:,} events",
        tuple(s.extra["peak_rss_mb"] for s in samples["ours"]), " MB", Target("<=", 200, " MB")))
    res.findings.append(ratio(samples, "ours", "raw", "events/s while streaming, ours over raw"))
    return res


SCENARIOS = [
    Scenario("cold_load", "cold open + load of a 10k-event run", cold_load),
    Scenario("stream", "streaming with bounded memory", stream),
]
