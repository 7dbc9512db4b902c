"""Property: MemoryStore and SqliteStore answer every sequence of operations identically."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mfm_store import ArtifactKind, DomainEvent, EventEnvelope, MemoryStore, MfmError, RunId
from mfm_store.canonical import artifact_id_for_bytes
from mfm_store.sqlite import SqliteStore
from mfm_store.stores import Store

RUNS = [RunId.parse(f"00000000-0000-4000-8000-00000000000{i}") for i in range(3)]
BLOBS = [b"", b"a", b"bb", b"ccc"]
KEYS = ["k1", "k2", "k3"]

_run = st.integers(0, len(RUNS) - 1)
_append = st.tuples(st.just("append"), _run, st.integers(0, 6), st.integers(-1, 2),
                    st.lists(st.sampled_from(["tick", "fact"]), max_size=3),
                    st.sampled_from(KEYS), st.integers(0, len(BLOBS) - 1))
_bind = st.tuples(st.just("bind"), _run, st.sampled_from(KEYS), st.integers(0, len(BLOBS) - 1))
_put = st.tuples(st.just("put"), st.integers(0, len(BLOBS) - 1), st.sampled_from(
    [ArtifactKind.FACT_PAYLOAD, ArtifactKind.OUTPUT, ArtifactKind.other("x")]))
_ops = st.lists(st.one_of(_append, _bind, _put), max_size=25)


async def apply(store: Store, ops: list[tuple[Any, ...]]) -> list[Any]:
    results: list[Any] = []
    for op in ops:
        try:
            if op[0] == "put":
                results.append(await store.put(op[2], BLOBS[op[1]]))
            elif op[0] == "bind":
                results.append(await store.bind_fact(RUNS[op[1]], op[2],
                                                     artifact_id_for_bytes(BLOBS[op[3]])))
            else:
                _, r, expected, skew, kinds, key, blob = op
                run = RUNS[r]
                envs = []
                for i, kind in enumerate(kinds, start=1):
                    payload: Any = {"i": i, "f": 0.25}
                    name = "tick"
                    if kind == "fact":
                        name = "fact_recorded"
                        payload = {"key": key, "payload_id": artifact_id_for_bytes(BLOBS[blob]),
                                   "meta": {}}
                    envs.append(EventEnvelope(run, expected + i + (skew if i == 1 else 0), None,
                                              DomainEvent(name, payload)))
                results.append(await store.append(run, expected, envs))
        except MfmError as exc:
            results.append((type(exc).__name__, exc.info.code))
    state = []
    for run in RUNS:
        state.append((await store.head_seq(run), await store.read_range(run),
                      await store.facts(run)))
    summaries = sorted((str(s.run_id), s.op_id, s.status, s.head_seq)
                       for s in await store.list_runs())
    blobs = [await store.exists(artifact_id_for_bytes(b)) for b in BLOBS]
    return [results, state, summaries, blobs]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_ops)
def test_memory_and_sqlite_agree(ops: list[tuple[Any, ...]]) -> None:
    async def both() -> tuple[list[Any], list[Any]]:
        async with MemoryStore() as memory:
            expected = await apply(memory, ops)
        with tempfile.TemporaryDirectory() as folder:
            async with SqliteStore.open(Path(folder) / "s.db", durability="normal") as sqlite:
                got = await apply(sqlite, ops)
        return expected, got

    expected, got = asyncio.run(both())
    assert got == expected
