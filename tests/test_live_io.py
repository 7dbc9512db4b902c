"""LiveIo (SPEC §6): keyed calls recorded once, refusals that store nothing, races, time/random."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import BACKENDS
from mfm_store import (
    ArtifactKind,
    DomainEvent,
    FactBinding,
    FactIndex,
    IoCall,
    IoError,
    IoProvider,
    IoResult,
    LiveIo,
    LiveIoEnv,
    MemoryStore,
    NoopFactRecorder,
    RouterLiveIoTransportFactory,
    RunId,
    StoreFactRecorder,
    TransportError,
    TransportRegistry,
    TransportRegistryError,
    UnimplementedLiveIoTransportFactory,
    artifact_id_for_bytes,
    artifact_id_for_json,
    canonical_json_bytes,
)
from mfm_store.ids import ArtifactId, FactKey, StateId
from mfm_store.stores import Store

STATE = "machine.main.s1"


class Answering:
    """A transport answering ``answer`` (or raising it, if it is an exception); counts calls."""

    def __init__(self, answer: Any, gate: asyncio.Barrier | None = None) -> None:
        self.answer = answer
        self.calls: list[IoCall] = []
        self.gate = gate

    async def call(self, call: IoCall) -> Any:
        self.calls.append(call)
        if self.gate is not None:
            await self.gate.wait()
        if isinstance(self.answer, BaseException):
            raise self.answer
        return self.answer


class GatedRecorder:
    """A real recorder that stops at a gate before delegating (or failing), so a test can act
    while a binding is in flight."""

    def __init__(self, inner: StoreFactRecorder, *, fail: bool = False) -> None:
        self.inner = inner
        self.fail = fail
        self.entered = asyncio.Event()
        self.gate = asyncio.Event()

    async def record_fact_binding(self, key: FactKey, payload_id: ArtifactId) -> FactBinding:
        self.entered.set()
        await self.gate.wait()
        if self.fail:
            raise IoError("recording refused", code="test_recording_refused")
        return await self.inner.record_fact_binding(key, payload_id)


def live(store: Store, run: RunId, transport: Any, *, facts: FactIndex | None = None,
         attempt: int = 0, recorder: Any = None, **kw: Any) -> LiveIo:
    return LiveIo(run, STATE, attempt, store, facts if facts is not None else FactIndex(),
                  recorder if recorder is not None else StoreFactRecorder(store, run),
                  transport, **kw)


async def fact_events(store: Store, run: RunId) -> list[DomainEvent]:
    return [e.event for e in await store.read_range(run)
            if isinstance(e.event, DomainEvent) and e.event.name == "fact_recorded"]


def would_be_id(value: Any) -> ArtifactId:
    """The id the payload would have had if it had been stored (it must not be)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return artifact_id_for_bytes(text.encode())


async def closed_store_like(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    """A closed store of the backend under test: recording through it really fails."""
    where = tmp_path / "closed"
    where.mkdir()
    other = await BACKENDS[request.node.callspec.params["store"]](where)
    await other.close()
    return other


# keyed calls


async def test_keyed_call_asks_transport_once_then_serves_the_record(store: Store) -> None:
    run = RunId.new()
    transport = Answering({"price": 42, "items": ["a", "b"]})
    io = live(store, run, transport)
    first = await io.call(IoCall("http.get", {"url": "https://x"}, fact_key="quote"))
    second = await io.call(IoCall("http.get", {"url": "https://x"}, fact_key="quote"))

    assert len(transport.calls) == 1
    pid = artifact_id_for_json({"price": 42, "items": ["a", "b"]})
    assert first == IoResult({"price": 42, "items": ["a", "b"]}, pid)
    assert second == first
    assert await store.get(pid) == canonical_json_bytes({"price": 42, "items": ["a", "b"]})
    assert await store.facts(run) == {"quote": pid}
    assert [e.payload for e in await fact_events(store, run)] == [
        {"key": "quote", "payload_id": pid, "meta": {}}]
    assert await store.head_seq(run) == 1


async def test_later_attempt_built_from_store_reuses_the_fact(store: Store) -> None:
    run = RunId.new()
    recorded = await live(store, run, Answering({"n": 1})).call(
        IoCall("http.get", {}, fact_key="k"))
    head = await store.head_seq(run)

    later = Answering({"n": 2})
    io = live(store, run, later, facts=await FactIndex.from_store(store, run), attempt=1)
    again = await io.call(IoCall("http.get", {}, fact_key="k"))

    assert later.calls == []
    assert again == recorded == IoResult({"n": 1}, artifact_id_for_json({"n": 1}))
    assert await store.head_seq(run) == head


async def test_unkeyed_call_is_never_recorded_nor_checked(store: Store) -> None:
    run = RunId.new()
    answer = {"price": 1.5, "password": "hunter2"}
    transport = Answering(answer)
    io = live(store, run, transport)
    results = [await io.call(IoCall("http.get", {"i": i})) for i in range(2)]

    assert len(transport.calls) == 2
    assert results == [IoResult(answer, None)] * 2
    assert await store.head_seq(run) == 0
    assert await store.facts(run) == {}
    assert not await store.exists(would_be_id(answer))


@pytest.mark.parametrize(("answer", "code"), [
    ({"price": 1.5}, "fact_payload_not_canonical"),
    ([1, 2, 3.0], "fact_payload_not_canonical"),
    (2**64, "fact_payload_not_canonical"),
    ({"password": "hunter2"}, "secrets_detected"),
    ({"auth": "Bearer abc"}, "secrets_detected"),
    ({"price": 1.5, "api_key": "x"}, "secrets_detected"),
])
async def test_non_canonical_or_secret_answer_is_refused_and_nothing_stored(
        store: Store, answer: Any, code: str) -> None:
    run = RunId.new()
    facts = FactIndex()
    io = live(store, run, Answering(answer), facts=facts)
    with pytest.raises(IoError) as err:
        await io.call(IoCall("http.get", {}, fact_key="k"))

    assert err.value.info.code == code
    assert not err.value.info.retryable
    assert await store.facts(run) == {}
    assert await store.head_seq(run) == 0
    assert not await store.exists(would_be_id(answer))
    assert await facts.get("k") is None
    # The key is not poisoned: a later good answer is recorded normally.
    ok = await live(store, run, Answering({"ok": 1}), facts=facts).call(
        IoCall("http.get", {}, fact_key="k"))
    assert ok.response == {"ok": 1}


async def test_secret_fact_key_is_refused_before_the_transport(store: Store) -> None:
    run = RunId.new()
    transport = Answering({"n": 1})
    with pytest.raises(IoError) as err:
        await live(store, run, transport).call(IoCall("x", {}, fact_key="my_api_key"))
    assert err.value.info.code == "secrets_detected"
    assert transport.calls == []
    assert await store.head_seq(run) == 0


@pytest.mark.parametrize("key", ["bad\ud800key", "", 7])
async def test_unusable_fact_key_is_refused_before_the_transport(store: Store,
                                                                 key: object) -> None:
    run = RunId.new()
    transport = Answering({"n": 1})
    io = live(store, run, transport)
    for attempt in (lambda: io.call(IoCall("x", {}, fact_key=key)),  # type: ignore[arg-type]
                    lambda: io.record_value(key, 1)):  # type: ignore[arg-type]
        with pytest.raises(IoError) as err:
            await attempt()
        assert err.value.info.code == "invalid_fact_key"
    assert transport.calls == []
    assert await store.head_seq(run) == 0


async def test_liveio_hands_the_store_bytes_it_need_not_scan_again(store: Store) -> None:
    # The store scans JSON fact payloads for secrets; LiveIo already did (canonical JSON), so
    # it hands them over marked as checked (package-internal), and the store trusts the mark.
    from mfm_store import _rules
    from mfm_store._io_common import canonical_payload

    payload, recorded = canonical_payload({"ok": "value"})
    assert isinstance(payload, _rules.CheckedBytes)
    assert payload.artifact_id == artifact_id_for_bytes(payload)  # hashed once, carried along
    assert recorded == {"ok": "value"}
    marked = _rules.CheckedBytes(b'{"password":1}')
    assert _rules.check_artifact(ArtifactKind.FACT_PAYLOAD, marked) == bytes(marked)
    with pytest.raises(Exception) as err:
        _rules.check_artifact(ArtifactKind.FACT_PAYLOAD, bytes(marked))
    assert err.value.info.code == "secrets_detected"  # type: ignore[attr-defined]
    run = RunId.new()
    io = live(store, run, Answering({"ok": "value"}))
    assert (await io.call(IoCall("x", {}, fact_key="k"))).response == {"ok": "value"}
    assert len(await io.random_bytes(32)) == 32
    assert len(await store.facts(run)) == 2


async def test_transport_error_propagates_unchanged_and_records_nothing(store: Store) -> None:
    run = RunId.new()
    boom = TransportError("upstream said no", retryable=True)
    facts = FactIndex()
    with pytest.raises(TransportError) as err:
        await live(store, run, Answering(boom), facts=facts).call(IoCall("x", {}, fact_key="k"))
    assert err.value is boom
    assert await facts.get("k") is None
    assert await store.head_seq(run) == 0


# durable binding failures


async def test_failed_durable_binding_rolls_back_and_next_call_retries_cleanly(
        store: Store, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    run = RunId.new()
    facts = FactIndex()
    broken = StoreFactRecorder(await closed_store_like(request, tmp_path), run)
    first = Answering({"n": 1})
    with pytest.raises(IoError) as err:
        await live(store, run, first, facts=facts, recorder=broken).call(
            IoCall("x", {}, fact_key="k"))

    assert err.value.info.code == "fact_binding_append_failed"
    assert len(first.calls) == 1
    assert await facts.get("k") is None
    assert await store.facts(run) == {}
    assert await store.head_seq(run) == 0

    second = Answering({"n": 2})
    result = await live(store, run, second, facts=facts).call(IoCall("x", {}, fact_key="k"))
    assert len(second.calls) == 1
    pid = artifact_id_for_json({"n": 2})
    assert result == IoResult({"n": 2}, pid)
    assert await facts.get("k") == pid
    assert await store.facts(run) == {"k": pid}
    assert len(await fact_events(store, run)) == 1


async def test_cancelled_recording_rolls_back_the_in_memory_binding(store: Store) -> None:
    run = RunId.new()
    facts = FactIndex()
    gated = GatedRecorder(StoreFactRecorder(store, run))
    task = asyncio.create_task(live(store, run, Answering({"n": 1}), facts=facts,
                                    recorder=gated).call(IoCall("x", {}, fact_key="k")))
    await gated.entered.wait()
    assert await facts.get("k") == artifact_id_for_json({"n": 1})
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await facts.get("k") is None
    assert await store.facts(run) == {}


async def test_task_sharing_the_index_waits_for_the_outcome_not_the_pending_binding(
        store: Store) -> None:
    run = RunId.new()
    facts = FactIndex()
    gated = GatedRecorder(StoreFactRecorder(store, run), fail=True)
    doomed = asyncio.create_task(live(store, run, Answering({"n": 1}), facts=facts,
                                      recorder=gated).call(IoCall("x", {}, fact_key="k")))
    await gated.entered.wait()
    other_transport = Answering({"n": 2})
    other = asyncio.create_task(live(store, run, other_transport, facts=facts).call(
        IoCall("x", {}, fact_key="k")))
    peek = asyncio.create_task(live(store, run, Answering(None), facts=facts)
                               .get_recorded_fact("k"))
    await asyncio.sleep(0)  # one scheduler turn: both tasks run up to the key's guard
    assert len(facts._guards["k"]) == 2  # one holder, two waiting
    assert not other.done() and not peek.done()

    gated.gate.set()
    with pytest.raises(IoError):
        await doomed
    pid = artifact_id_for_json({"n": 2})
    assert await other == IoResult({"n": 2}, pid)
    assert len(other_transport.calls) == 1
    assert await peek in (None, pid)
    assert await store.facts(run) == {"k": pid}


async def test_put_failure_is_reported_and_binds_nothing(
        store: Store, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    run = RunId.new()
    facts = FactIndex()
    closed = await closed_store_like(request, tmp_path)
    io = LiveIo(run, STATE, 0, closed, facts, StoreFactRecorder(store, run), Answering({"n": 1}))
    with pytest.raises(IoError) as err:
        await io.call(IoCall("x", {}, fact_key="k"))
    assert err.value.info.code == "fact_payload_put_failed"
    assert await facts.get("k") is None
    assert await store.head_seq(run) == 0


# races


async def test_eight_liveios_sharing_an_index_agree_on_the_first_answer(store: Store) -> None:
    run = RunId.new()
    facts = FactIndex()
    transports = [Answering({"worker": i}) for i in range(8)]
    ios = [live(store, run, t, facts=facts) for t in transports]
    results = await asyncio.gather(*(io.call(IoCall("x", {}, fact_key="k")) for io in ios))

    called = [i for i, t in enumerate(transports) if t.calls]
    assert len(called) == 1
    first = {"worker": called[0]}
    assert {json.dumps(r.to_json()) for r in results} == {
        json.dumps(IoResult(first, artifact_id_for_json(first)).to_json())}
    assert await store.facts(run) == {"k": artifact_id_for_json(first)}
    assert len(await fact_events(store, run)) == 1


async def test_eight_liveios_with_their_own_indexes_race_and_serve_the_winner(
        store: Store) -> None:
    run = RunId.new()
    gate = asyncio.Barrier(8)  # every transport is in flight before any answer is recorded
    transports = [Answering({"worker": i}, gate) for i in range(8)]
    indexes = [FactIndex() for _ in range(8)]
    ios = [live(store, run, t, facts=f) for t, f in zip(transports, indexes, strict=True)]
    results = await asyncio.gather(*(io.call(IoCall("x", {}, fact_key="k")) for io in ios))

    assert all(len(t.calls) == 1 for t in transports)
    winner = await store.get_fact(run, "k")
    assert winner is not None
    winning_value = json.loads(await store.get(winner))
    assert all(r == IoResult(winning_value, winner) for r in results)
    assert [await f.get("k") for f in indexes] == [winner] * 8
    assert await store.facts(run) == {"k": winner}
    assert len(await fact_events(store, run)) == 1


async def test_stale_index_loses_to_the_durable_binding_and_serves_the_winner(
        store: Store) -> None:
    run = RunId.new()
    await live(store, run, Answering({"n": "first"})).call(IoCall("x", {}, fact_key="k"))
    stale = FactIndex()
    bound: list[FactBinding] = []
    recorder = StoreFactRecorder(store, run, on_bound=bound.append)
    late = Answering({"n": "late"})
    result = await live(store, run, late, facts=stale, recorder=recorder).call(
        IoCall("x", {}, fact_key="k"))

    pid = artifact_id_for_json({"n": "first"})
    assert len(late.calls) == 1
    assert result == IoResult({"n": "first"}, pid)
    assert await stale.get("k") == pid
    assert bound == [FactBinding(pid, False, 1)]
    assert len(await fact_events(store, run)) == 1
    # StoreFactRecorder stores payload and binding in one write: the loser's is never stored.
    assert not await store.exists(artifact_id_for_json({"n": "late"}))


# record_value / get_recorded_fact


async def test_record_value_is_first_writer_wins(store: Store) -> None:
    run = RunId.new()
    io = live(store, run, Answering(None))
    assert await io.get_recorded_fact("cfg") is None
    pid = await io.record_value("cfg", {"mode": "fast"})
    assert pid == artifact_id_for_json({"mode": "fast"})
    assert await io.record_value("cfg", {"mode": "slow"}) == pid
    assert await io.get_recorded_fact("cfg") == pid
    assert await store.facts(run) == {"cfg": pid}
    with pytest.raises(IoError) as err:
        await io.record_value("other", {"x": 0.5})
    assert err.value.info.code == "fact_payload_not_canonical"
    assert await store.facts(run) == {"cfg": pid}


async def test_reading_a_recorded_payload_can_fail(store: Store) -> None:
    run = RunId.new()
    garbage = await store.put(ArtifactKind.FACT_PAYLOAD, b"\xff\xfe{")
    await store.bind_fact(run, "garbage", garbage)
    facts = await FactIndex.from_store(store, run)
    transport = Answering({"n": 1})
    io = live(store, run, transport, facts=facts)
    with pytest.raises(IoError) as err:
        await io.call(IoCall("x", {}, fact_key="garbage"))
    assert err.value.info.code == "fact_payload_decode_failed"

    missing = artifact_id_for_bytes(b"never stored")
    io = live(store, run, transport, facts=FactIndex({"gone": missing}))
    with pytest.raises(IoError) as err:
        await io.call(IoCall("x", {}, fact_key="gone"))
    assert err.value.info.code == "fact_payload_get_failed"
    assert transport.calls == []


# time and random


def key(kind: str, run: RunId, ordinal: int, attempt: int = 0) -> str:
    return f"mfm:{kind}|run:{run}|state:{STATE}|attempt:{attempt}|ord:{ordinal}"


async def test_time_and_random_are_facts_with_derived_keys_and_one_counter(store: Store) -> None:
    run = RunId.new()
    io = live(store, run, Answering(None))
    before = time.time_ns() // 1_000_000
    t0 = await io.now_millis()
    r1 = await io.random_bytes(16)
    t2 = await io.now_millis()
    after = time.time_ns() // 1_000_000
    assert before <= t0 <= t2 <= after
    assert len(r1) == 16

    facts = await store.facts(run)
    assert set(facts) == {key("now_millis", run, 0), key("random_bytes", run, 1),
                          key("now_millis", run, 2)}
    assert await store.get(facts[key("now_millis", run, 0)]) == str(t0).encode()
    assert await store.get(facts[key("random_bytes", run, 1)]) == r1
    assert facts[key("random_bytes", run, 1)] == hashlib.sha256(r1).hexdigest()
    assert [e.payload["key"] for e in await fact_events(store, run)] == [
        key("now_millis", run, 0), key("random_bytes", run, 1), key("now_millis", run, 2)]

    # A new LiveIo for the same attempt starts its own counter at 0 and gets the recorded values;
    # a later attempt has new keys, hence new values.
    same = live(store, run, Answering(None), facts=await FactIndex.from_store(store, run),
                clock=lambda: 5, entropy=lambda n: b"\x00" * n)
    assert [await same.now_millis(), await same.random_bytes(16), await same.now_millis()] == [
        t0, r1, t2]
    retry = live(store, run, Answering(None), facts=await FactIndex.from_store(store, run),
                 attempt=1, clock=lambda: 5, entropy=lambda n: b"\x07" * n)
    assert await retry.now_millis() == 5
    assert await retry.random_bytes(3) == b"\x07\x07\x07"
    assert key("now_millis", run, 0, attempt=1) in await store.facts(run)
    assert len(await store.facts(run)) == 5


async def test_random_bytes_are_stored_raw_even_when_not_json(store: Store) -> None:
    run = RunId.new()
    raw = bytes([0, 1, 2, 255])
    io = live(store, run, Answering(None), entropy=lambda n: raw[:n])
    assert await io.random_bytes(4) == raw
    pid = (await store.facts(run))[key("random_bytes", run, 0)]
    assert pid == artifact_id_for_bytes(raw)
    assert await store.get(pid) == raw


def _no_clock() -> int:
    raise OSError("clock is gone")


def _no_entropy(n: int) -> bytes:
    raise NotImplementedError("no entropy source")


async def test_clock_or_entropy_failure_raises_without_using_an_ordinal(store: Store) -> None:
    run = RunId.new()
    facts = FactIndex()
    broken = live(store, run, Answering(None), facts=facts, clock=_no_clock, entropy=_no_entropy)
    with pytest.raises(IoError) as err:
        await broken.now_millis()
    assert err.value.info.code == "time_unavailable"
    with pytest.raises(IoError) as err:
        await broken.random_bytes(8)
    assert err.value.info.code == "random_unavailable"
    assert await store.head_seq(run) == 0

    broken._clock = lambda: 1_700_000_000_000
    assert await broken.now_millis() == 1_700_000_000_000
    assert await store.facts(run) == {
        key("now_millis", run, 0): artifact_id_for_bytes(b"1700000000000")}


async def test_recorded_time_or_random_of_the_wrong_shape_is_invalid(store: Store) -> None:
    run = RunId.new()
    text = await store.put(ArtifactKind.FACT_PAYLOAD, b'"soon"')
    short = await store.put(ArtifactKind.FACT_PAYLOAD, b"\x01\x02")
    await store.bind_fact(run, key("now_millis", run, 0), text)
    await store.bind_fact(run, key("random_bytes", run, 1), short)
    io = live(store, run, Answering(None), facts=await FactIndex.from_store(store, run))
    with pytest.raises(IoError) as err:
        await io.now_millis()
    assert err.value.info.code == "fact_payload_invalid"
    with pytest.raises(IoError) as err:
        await io.random_bytes(8)
    assert err.value.info.code == "fact_payload_invalid"


# transports, routing, registry


class Named:
    def __init__(self, group: str) -> None:
        self.namespace_group = group
        self.envs: list[LiveIoEnv] = []

    def make(self, env: LiveIoEnv) -> Answering:
        self.envs.append(env)
        return Answering({"served_by": self.namespace_group})


async def test_router_picks_the_longest_matching_group() -> None:
    store = MemoryStore()
    local, local_fs, http = Named("local"), Named("local.fs"), Named("http")
    router = RouterLiveIoTransportFactory([local, local_fs, http])
    env = LiveIoEnv(store, RunId.new(), STATE, 0)
    transport = router.make(env)
    assert local.envs == local_fs.envs == http.envs == [env]

    async def served_by(namespace: str) -> Any:
        return (await transport.call(IoCall(namespace, {})))["served_by"]

    assert await served_by("local.fs.read_text") == "local.fs"
    assert await served_by("local.fs") == "local.fs"
    assert await served_by("local.env") == "local"
    assert await served_by("local") == "local"
    assert await served_by("http.get") == "http"
    with pytest.raises(IoError) as err:
        await transport.call(IoCall("localhost.get", {"token_hint": "abc-123"}))
    assert err.value.info.code == "io_unknown_namespace"
    assert "abc-123" not in str(err.value) and err.value.info.details is None
    assert router.namespace_group == "router"


def test_registry_refuses_empty_and_duplicate_groups() -> None:
    registry = TransportRegistry([Named("http")])
    for bad in ("", "   "):
        with pytest.raises(TransportRegistryError, match="must not be empty") as err:
            registry.register(Named(bad))
        assert err.value.info.code == "transport_registry_invalid"
    with pytest.raises(ValueError, match="duplicate transport namespace group: http"):
        registry.register(Named(" http "))
    with pytest.raises(TransportRegistryError, match="duplicate"):
        RouterLiveIoTransportFactory([Named("a"), Named("a")])
    assert set(registry.all()) == {"http"}
    assert registry.resolve("http") is not None and registry.resolve("http.get") is None
    assert RouterLiveIoTransportFactory.from_registry(registry).make(
        LiveIoEnv(MemoryStore(), RunId.new(), STATE, 0)) is not None


async def test_unimplemented_transport_fails_every_call() -> None:
    factory = UnimplementedLiveIoTransportFactory()
    transport = factory.make(LiveIoEnv(MemoryStore(), RunId.new(), STATE, 0))
    with pytest.raises(IoError) as err:
        await transport.call(IoCall("http.get", {}))
    assert err.value.info.code == "io_unimplemented"
    assert factory.namespace_group == "unimplemented"


def test_values_validate_and_round_trip() -> None:
    env = LiveIoEnv(MemoryStore(), RunId.new(), STATE, 3)
    assert env.store is env.stores and env.state_id == StateId(STATE)
    with pytest.raises(ValueError, match="invalid state_id"):
        LiveIoEnv(MemoryStore(), RunId.new(), "not-a-state", 0)
    with pytest.raises(ValueError, match="attempt"):
        LiveIoEnv(MemoryStore(), RunId.new(), STATE, -1)
    call = IoCall("http.get", {"u": 1}, fact_key="k")
    assert call.to_json() == {"namespace": "http.get", "request": {"u": 1}, "fact_key": "k"}
    assert IoCall.from_json(call.to_json()) == call
    result = IoResult([1], artifact_id_for_json([1]))
    assert IoResult.from_json(result.to_json()) == result
    assert IoResult(None).to_json() == {"response": None, "recorded_payload_id": None}


async def test_live_io_is_an_io_provider(store: Store) -> None:
    io = LiveIo(RunId.new(), STATE, 0, store, FactIndex(), NoopFactRecorder(), Answering(1))
    assert isinstance(io, IoProvider)
    assert await io.call(IoCall("x", {}, fact_key="k")) == IoResult(1, artifact_id_for_json(1))
    # NoopFactRecorder: payload stored, binding only in memory.
    assert await io.get_recorded_fact("k") == artifact_id_for_json(1)


# canonical_payload: one walk gives the bytes canonical_json_bytes gives, and the recorded form

_SECRETISH = st.sampled_from(["password", "Bearer x", "api_key", "ok", "x" * 30,
                              " ".join(["abandon"] * 12), "é\u2603", "\ud800"])
_JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**65), max_value=2**65)
    | st.floats(allow_nan=False) | st.text(max_size=30) | _SECRETISH,
    lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner)
    | st.dictionaries(st.text(max_size=8) | _SECRETISH, inner, max_size=4),
    max_leaves=12)


@given(_JSONISH)
def test_canonical_payload_agrees_with_canonical_json_bytes(value: Any) -> None:
    from mfm_store._io_common import canonical_payload
    from mfm_store.errors import CanonicalJsonError, SecretsNotAllowedError

    try:
        expected = canonical_json_bytes(value)
    except SecretsNotAllowedError:
        with pytest.raises(IoError) as err:
            canonical_payload(value)
        assert err.value.info.code == "secrets_detected"
        return
    except CanonicalJsonError:
        with pytest.raises(IoError) as err:
            canonical_payload(value)
        assert err.value.info.code == "fact_payload_not_canonical"
        return
    data, recorded = canonical_payload(value)
    assert bytes(data) == expected
    assert data.artifact_id == artifact_id_for_bytes(expected)
    assert recorded == json.loads(expected)
