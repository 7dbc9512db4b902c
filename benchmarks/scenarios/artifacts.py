"""Artifact puts of 1 KiB, 64 KiB and 1 MiB: ours against SHA-256 + a raw insert."""

from __future__ import annotations

from contextlib import AsyncExitStack

from mfm_store.sqlite import SqliteStore
from mfm_store.stores import ArtifactKind

from ..context import Context
from ..harness import Sample, Side, Stopwatch, Target
from ..raw import RawDb
from ..results import ScenarioResult
from ..workload import random_blobs
from ._base import Scenario, ratio

__all__ = ["SCENARIOS"]


def _label(size: int) -> str:
    return f"{size >> 20}MiB" if size >= 1 << 20 else f"{size >> 10}KiB"


async def artifacts(ctx: Context) -> ScenarioResult:
    p = ctx.profile
    res = ScenarioResult(
        "artifacts", "Artifact puts (full)",
        "Distinct random blobs put one at a time, each awaited (durable) before the next; "
        "raw = SHA-256 of the bytes (timed) + one INSERT transaction of the same row.")
    kind = ArtifactKind.OUTPUT
    async with AsyncExitStack() as stack:
        store = await SqliteStore.open(ctx.path("ours"), durability="full")
        stack.push_async_callback(store.close)
        raw = RawDb(ctx.path("raw"), "full")
        stack.callback(raw.close)
        sides: list[Side] = []
        for size in p.artifact_bytes:
            # Small blobs are capped by count (as many as append_seq appends), big ones by bytes.
            count = max(3, min(p.seq_appends, p.artifact_total // size))

            async def ours(_r: int, size: int = size, count: int = count) -> Sample:
                blobs = random_blobs(size, count)
                sw = Stopwatch()
                with sw.timing():
                    for blob in blobs:
                        await store.put(kind, blob)
                return sw.sample(count)

            async def raw_side(_r: int, size: int = size, count: int = count) -> Sample:
                blobs = random_blobs(size, count)
                sw = Stopwatch()
                with sw.timing():
                    for blob in blobs:
                        raw.put(str(kind), blob)  # SHA-256 and row checksum, as the store
                return sw.sample(count)

            tag = _label(size)
            sides.append(Side(f"ours_{tag}", f"SqliteStore.put {tag}", "puts", ours))
            sides.append(Side(f"raw_{tag}", f"SHA-256 + sqlite3 insert {tag}", "puts", raw_side))
        samples = await ctx.measure(sides)
    res.add_sides(sides, samples)
    for size in p.artifact_bytes:
        tag = _label(size)
        target = Target(">=", 0.7) if size == 1 << 20 else None
        res.findings.append(ratio(samples, f"ours_{tag}", f"raw_{tag}",
                                  f"{tag} puts/s, ours over SHA-256 + raw insert", target))
    return res


SCENARIOS = [Scenario("artifacts", "artifact puts 1 KiB / 64 KiB / 1 MiB", artifacts)]
