"""ReplayIo (SPEC §6): recorded facts served without transport, missing facts, no writes."""

from __future__ import annotations

from typing import Any

import pytest

from mfm_store import (
    ArtifactKind,
    FactIndex,
    IoCall,
    IoError,
    IoProvider,
    IoResult,
    LiveIo,
    MissingFactError,
    MissingFactKeyError,
    ReplayIo,
    RunId,
    StoreFactRecorder,
    artifact_id_for_bytes,
    artifact_id_for_json,
)
from mfm_store.stores import Store

STATE = "machine.main.s1"


class Answering:
    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.calls = 0

    async def call(self, call: IoCall) -> Any:
        self.calls += 1
        return self.answer


def key(kind: str, run: RunId, ordinal: int, attempt: int = 0) -> str:
    return f"mfm:{kind}|run:{run}|state:{STATE}|attempt:{attempt}|ord:{ordinal}"


async def replay(store: Store, run: RunId, attempt: int = 0, **kw: Any) -> ReplayIo:
    return ReplayIo(run, STATE, attempt, store, await FactIndex.from_store(store, run), **kw)


async def test_replay_serves_what_live_recorded_in_the_same_order(store: Store) -> None:
    run = RunId.new()
    live = LiveIo(run, STATE, 0, store, FactIndex(), StoreFactRecorder(store, run),
                  Answering({"price": 7}))
    call = IoCall("http.get", {"url": "https://x"}, fact_key="quote")
    recorded = [await live.call(call), await live.now_millis(), await live.random_bytes(32),
                await live.now_millis(), await live.record_value("cfg", [1, "two"])]
    head, facts = await store.head_seq(run), await store.facts(run)

    io = await replay(store, run)
    assert isinstance(io, IoProvider)
    served = [await io.call(call), await io.now_millis(), await io.random_bytes(32),
              await io.now_millis(), await io.record_value("cfg", [1, "two"])]
    assert served == recorded
    assert served[0] == IoResult({"price": 7}, artifact_id_for_json({"price": 7}))
    assert await io.get_recorded_fact("quote") == artifact_id_for_json({"price": 7})
    assert await io.get_recorded_fact("nope") is None
    assert await store.head_seq(run) == head
    assert await store.facts(run) == facts


async def test_call_without_fact_key_is_refused(store: Store) -> None:
    io = await replay(store, RunId.new())
    with pytest.raises(MissingFactKeyError) as err:
        await io.call(IoCall("http.get", {}))
    assert err.value.info.code == "missing_fact_key"
    assert not err.value.info.retryable


@pytest.mark.parametrize("retryable", [None, False, True])
async def test_unbound_key_is_a_missing_fact_with_configured_retryable(
        store: Store, retryable: bool | None) -> None:
    run = RunId.new()
    facts = await FactIndex.from_store(store, run)
    io = (ReplayIo(run, STATE, 0, store, facts) if retryable is None
          else ReplayIo(run, STATE, 0, store, facts, missing_fact_retryable=retryable))
    expected = bool(retryable)
    with pytest.raises(MissingFactError) as err:
        await io.call(IoCall("http.get", {}, fact_key="k"))
    assert err.value.key == "k"
    assert err.value.info.code == "missing_fact"
    assert err.value.info.retryable is expected
    with pytest.raises(MissingFactError) as err:
        await io.record_value("cfg", {"a": 1})
    assert err.value.key == "cfg" and err.value.info.retryable is expected
    assert await store.head_seq(run) == 0
    assert await store.facts(run) == {}
    assert not await store.exists(artifact_id_for_json({"a": 1}))


async def test_time_and_random_use_the_derived_keys_and_consume_ordinals(store: Store) -> None:
    run = RunId.new()
    io = await replay(store, run, attempt=2)
    with pytest.raises(MissingFactError) as err:
        await io.now_millis()
    assert err.value.key == key("now_millis", run, 0, attempt=2)
    with pytest.raises(MissingFactError) as err:
        await io.random_bytes(4)
    assert err.value.key == key("random_bytes", run, 1, attempt=2)
    assert await store.head_seq(run) == 0


async def test_a_later_attempt_does_not_see_time_recorded_by_an_earlier_one(store: Store) -> None:
    run = RunId.new()
    live = LiveIo(run, STATE, 0, store, FactIndex(), StoreFactRecorder(store, run),
                  Answering(None), clock=lambda: 1234)
    assert await live.now_millis() == 1234
    assert await (await replay(store, run, attempt=0)).now_millis() == 1234
    with pytest.raises(MissingFactError):
        await (await replay(store, run, attempt=1)).now_millis()


async def test_random_bytes_are_served_raw(store: Store) -> None:
    run = RunId.new()
    raw = bytes([0, 1, 2, 255])
    pid = await store.put(ArtifactKind.FACT_PAYLOAD, raw)
    await store.bind_fact(run, key("random_bytes", run, 0), pid)
    assert await (await replay(store, run)).random_bytes(4) == raw


@pytest.mark.parametrize("payload", [b'"soon"', b"1.5", b"-1", b"true", b"18446744073709551616",
                                     b"null", b"[1]"])
async def test_time_payload_that_is_not_a_u64_is_invalid(store: Store, payload: bytes) -> None:
    run = RunId.new()
    pid = await store.put(ArtifactKind.FACT_PAYLOAD, payload)
    await store.bind_fact(run, key("now_millis", run, 0), pid)
    with pytest.raises(IoError) as err:
        await (await replay(store, run)).now_millis()
    assert err.value.info.code == "fact_payload_invalid"


async def test_time_payload_at_the_u64_limit_is_served(store: Store) -> None:
    run = RunId.new()
    pid = await store.put(ArtifactKind.FACT_PAYLOAD, b"18446744073709551615")
    await store.bind_fact(run, key("now_millis", run, 0), pid)
    assert await (await replay(store, run)).now_millis() == 2**64 - 1


async def test_random_payload_of_the_wrong_length_is_invalid(store: Store) -> None:
    run = RunId.new()
    pid = await store.put(ArtifactKind.FACT_PAYLOAD, b"\x01\x02\x03")
    await store.bind_fact(run, key("random_bytes", run, 0), pid)
    with pytest.raises(IoError) as err:
        await (await replay(store, run)).random_bytes(4)
    assert err.value.info.code == "fact_payload_invalid"


@pytest.mark.parametrize("payload", [b"\xff\xfe", b"{", b"NaN", b"[Infinity]", b"\xef\xbb\xbf1"])
async def test_call_payload_that_is_not_json_fails_to_decode(store: Store, payload: bytes) -> None:
    run = RunId.new()
    pid = await store.put(ArtifactKind.FACT_PAYLOAD, payload)
    await store.bind_fact(run, "k", pid)
    with pytest.raises(IoError) as err:
        await (await replay(store, run)).call(IoCall("x", {}, fact_key="k"))
    assert err.value.info.code == "fact_payload_decode_failed"


async def test_payload_missing_from_the_store_fails_to_read(store: Store) -> None:
    run = RunId.new()
    io = ReplayIo(run, STATE, 0, store, FactIndex({"k": artifact_id_for_bytes(b"gone")}))
    with pytest.raises(IoError) as err:
        await io.call(IoCall("x", {}, fact_key="k"))
    assert err.value.info.code == "fact_payload_get_failed"
    assert not await store.exists(artifact_id_for_bytes(b"gone"))
