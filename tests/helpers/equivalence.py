"""Random operation sequences for the store-equivalence property tests (memory against
SQLite, memory against PostgreSQL): ``OPS`` draws them, ``apply`` runs them on a store and
returns every answer and the final state."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from mfm_store import ArtifactKind, DomainEvent, EventEnvelope, MfmError, RunId
from mfm_store.canonical import artifact_id_for_bytes
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
_record = st.tuples(st.just("record"), _run, st.sampled_from([*KEYS, "", "api_key", "k\ud800"]),
                    st.sampled_from([b'{"n":1}', b'{"password":1}', b"\xff raw", 12]))
_bad = st.tuples(st.just("bad"), st.integers(0, 7), _run)
OPS = st.lists(st.one_of(_append, _bind, _put, _record, _bad), max_size=25)


def bad_call(store: Store, which: int, run: RunId) -> Any:
    """Inputs every backend must refuse with the same code (issue 11 §3)."""
    missing = artifact_id_for_bytes(b"never stored")
    calls: list[Any] = [
        lambda: store.head_seq(None),  # type: ignore[arg-type]
        lambda: store.read_range(run, 1, 2**70),
        lambda: store.put(ArtifactKind.OUTPUT, 10),  # type: ignore[arg-type]
        lambda: store.append(run, True, []),  # type: ignore[arg-type]
        lambda: store.append(run, 0, [EventEnvelope(run, 1, None,
                                                    DomainEvent("x", {"api_key": "s"}))]),
        lambda: store.append(run, 0, [EventEnvelope(run, 1, None, DomainEvent("x", 1, missing))]),
        lambda: store.bind_fact(run, "k", missing, expected_seq=1.0),  # type: ignore[arg-type]
        lambda: store.get_fact("garbage", "k"),  # type: ignore[arg-type]
    ]
    return calls[which]()


async def apply(store: Store, ops: list[tuple[Any, ...]]) -> list[Any]:
    results: list[Any] = []
    for op in ops:
        try:
            if op[0] == "put":
                results.append(await store.put(op[2], BLOBS[op[1]]))
            elif op[0] == "record":
                results.append(await store.record_fact(RUNS[op[1]], op[2], op[3]))
            elif op[0] == "bad":
                results.append(await bad_call(store, op[1], RUNS[op[2]]))
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
