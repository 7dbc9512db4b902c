"""FactIndex and the fact recorders (SPEC §6)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from conftest import BACKENDS
from mfm_store import (
    ArtifactKind,
    DomainEvent,
    EventEnvelope,
    FactBinding,
    FactIndex,
    FactRecorder,
    IoError,
    NoopFactRecorder,
    NotFoundError,
    RunId,
    RunStarted,
    StoreFactRecorder,
    artifact_id_for_bytes,
)
from mfm_store.ids import ArtifactId
from mfm_store.stores import Store

A = ArtifactId("a" * 64)
B = ArtifactId("b" * 64)
C = ArtifactId("c" * 64)


def fact(run: RunId, seq: int, payload: object, name: str = "fact_recorded") -> EventEnvelope:
    return EventEnvelope(run, seq, None, DomainEvent(name, payload))


async def test_bind_if_unset_and_unbind_if_matches() -> None:
    index = FactIndex()
    assert await index.get("k") is None
    assert await index.bind_if_unset("k", A) == (A, True)
    assert await index.bind_if_unset("k", B) == (A, False)
    assert await index.bind_if_unset("k", A) == (A, False)
    assert await index.unbind_if_matches("k", B) is False
    assert await index.get("k") == A
    assert await index.unbind_if_matches("k", A) is True
    assert await index.get("k") is None
    assert await index.unbind_if_matches("k", A) is False
    assert await index.snapshot() == {}


async def test_concurrent_binders_have_exactly_one_winner() -> None:
    index = FactIndex()
    ids = [ArtifactId(f"{i:x}" * 64) for i in range(10)]
    results = await asyncio.gather(*(index.bind_if_unset("k", pid) for pid in ids))
    assert sum(inserted for _, inserted in results) == 1
    assert len({effective for effective, _ in results}) == 1


async def test_from_event_stream_keeps_the_first_binding_and_skips_malformed() -> None:
    run = RunId.new()
    stream = [
        EventEnvelope(run, 1, None, RunStarted("op", A, A)),
        fact(run, 2, "not an object"),
        fact(run, 3, {"key": "no_meta", "payload_id": A}),
        fact(run, 4, {"key": 7, "payload_id": A, "meta": {}}),
        fact(run, 5, {"key": "bad_id", "payload_id": "xyz", "meta": {}}),
        fact(run, 6, {"key": "other_name", "payload_id": A, "meta": {}}, name="artifact_written"),
        fact(run, 7, {"key": "k", "payload_id": A, "meta": None, "extra": 1}),
        fact(run, 8, {"key": "k", "payload_id": B, "meta": {}}),
        fact(run, 9, {"key": "j", "payload_id": C, "meta": {"note": 1.5}}),
    ]
    index = FactIndex.from_event_stream(stream)
    assert await index.snapshot() == {"k": A, "j": C}


async def test_from_store_loads_the_binding_table(store: Store) -> None:
    run = RunId.new()
    p1 = await store.put(ArtifactKind.FACT_PAYLOAD, b"1")
    p2 = await store.put(ArtifactKind.FACT_PAYLOAD, b"2")
    await store.bind_fact(run, "one", p1)
    await store.bind_fact(run, "two", p2)
    await store.bind_fact(run, "one", p2)
    await store.bind_fact(RunId.new(), "three", p1)

    index = await FactIndex.from_store(store, run)
    assert await index.snapshot() == {"one": p1, "two": p2}
    assert await FactIndex.from_event_stream(await store.read_range(run)).snapshot() == {
        "one": p1, "two": p2}
    assert await (await FactIndex.from_store(store, RunId.new())).snapshot() == {}


async def test_store_recorder_binds_durably_and_reports_every_answer(store: Store) -> None:
    run = RunId.new()
    seen: list[FactBinding] = []
    recorder = StoreFactRecorder(store, run, on_bound=seen.append)
    assert isinstance(recorder, FactRecorder)
    p1 = await store.put(ArtifactKind.FACT_PAYLOAD, b'{"n":1}')
    p2 = await store.put(ArtifactKind.FACT_PAYLOAD, b'{"n":2}')

    first = await recorder.record_fact_binding("k", p1)
    assert first == FactBinding(p1, True, 1)
    assert recorder.last_binding == first
    assert await store.head_seq(run) == 1
    assert await store.facts(run) == {"k": p1}

    # Another writer (a second recorder on the same run) comes late: it is told the winner.
    late = await StoreFactRecorder(store, run).record_fact_binding("k", p2)
    assert late == FactBinding(p1, False, 1)
    again = await recorder.record_fact_binding("k", p2)
    assert again == FactBinding(p1, False, 1)
    assert seen == [first, again]
    assert await store.head_seq(run) == 1


async def test_store_recorder_refuses_secret_keys_and_reports_store_failures(
        store: Store, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    run = RunId.new()
    pid = await store.put(ArtifactKind.FACT_PAYLOAD, b"1")
    recorder = StoreFactRecorder(store, run)
    with pytest.raises(IoError) as err:
        await recorder.record_fact_binding("the password", pid)
    assert err.value.info.code == "secrets_detected"
    assert "password" not in err.value.info.message

    with pytest.raises(IoError) as err:
        await recorder.record_fact_binding("k", artifact_id_for_bytes(b"never stored"))
    assert err.value.info.code == "fact_binding_append_failed"
    assert isinstance(err.value.__cause__, NotFoundError)

    where = tmp_path / "closed"
    where.mkdir()
    closed = await BACKENDS[request.node.callspec.params["store"]](where)
    await closed.close()
    with pytest.raises(IoError) as err:
        await StoreFactRecorder(closed, run).record_fact_binding("k", pid)
    assert err.value.info.code == "fact_binding_append_failed"
    assert recorder.last_binding is None
    assert await store.head_seq(run) == 0
    assert await store.facts(run) == {}


async def test_noop_recorder_records_nothing() -> None:
    recorder = NoopFactRecorder()
    assert isinstance(recorder, FactRecorder)
    assert await recorder.record_fact_binding("k", A) is None
