"""Workload sizes for each mode: ``smoke`` (seconds, used by the test), ``quick`` (about a
minute) and ``full`` (the default, a few minutes)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PROFILES", "Profile"]


@dataclass(frozen=True, kw_only=True)
class Profile:
    name: str
    rounds: int
    warmup: int
    seq_appends: int  # single-event appends per round (append_seq, durability)
    concurrency: tuple[int, ...]  # task counts of append_concurrent (and the chart)
    concurrent_appends: int  # appends per round at each concurrency level
    bulk_batches: int  # 1000-event batches per round
    bulk_batch_size: int
    facts: int  # facts per round, LiveIo and raw
    peer_events: int  # eventsourcing events per round (1 per transaction)
    dbos_steps: int  # DBOS workflow steps per round
    artifact_bytes: tuple[int, ...]
    artifact_total: int  # bytes put per round and size (at least 3 puts)
    cold_events: int
    cold_facts: int
    stream_events: int
    stream_rounds: int


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke", rounds=2, warmup=0, seq_appends=40, concurrency=(1, 10),
        concurrent_appends=100, bulk_batches=2, bulk_batch_size=1000, facts=40,
        peer_events=40, dbos_steps=10, artifact_bytes=(1024, 65536, 1 << 20),
        artifact_total=1 << 21, cold_events=300, cold_facts=30, stream_events=2000,
        stream_rounds=1,
    ),
    "quick": Profile(
        name="quick", rounds=5, warmup=1, seq_appends=800, concurrency=(1, 10, 100, 1000),
        concurrent_appends=3000, bulk_batches=15, bulk_batch_size=1000, facts=600,
        peer_events=800, dbos_steps=100, artifact_bytes=(1024, 65536, 1 << 20),
        artifact_total=6 << 20, cold_events=10_000, cold_facts=1000, stream_events=100_000,
        stream_rounds=1,
    ),
    "full": Profile(
        name="full", rounds=11, warmup=1, seq_appends=3000, concurrency=(1, 10, 100, 1000),
        concurrent_appends=8000, bulk_batches=60, bulk_batch_size=1000, facts=2000,
        peer_events=2500, dbos_steps=400, artifact_bytes=(1024, 65536, 1 << 20),
        artifact_total=32 << 20, cold_events=10_000, cold_facts=1000,
        stream_events=1_000_000, stream_rounds=3,
    ),
}
