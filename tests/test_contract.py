"""The store contract (SPEC §5.1), written once and run against every backend in BACKENDS."""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from mfm_store import (
    ArtifactId,
    ArtifactKind,
    ConcurrencyError,
    DomainEvent,
    EventEnvelope,
    MfmError,
    NotFoundError,
    RunCompleted,
    RunId,
    RunStarted,
    RunStatus,
    StateEntered,
    StorageError,
    Store,
)

A = hashlib.sha256(b'"a"').hexdigest()
B = hashlib.sha256(b'"b"').hexdigest()


async def put_ab(store: Store) -> None:
    """Store the artifacts A and B (events may name only artifacts the store holds)."""
    assert await store.put(ArtifactKind.FACT_PAYLOAD, b'"a"') == A
    assert await store.put(ArtifactKind.FACT_PAYLOAD, b'"b"') == B


def envs(run: RunId, start: int, n: int, ts: int | None = None) -> list[EventEnvelope]:
    return [EventEnvelope(run, s, ts, DomainEvent("tick", {"i": s, "f": 0.5}))
            for s in range(start, start + n)]


def fact_event(run: RunId, seq: int, key: str, pid: str) -> EventEnvelope:
    payload = {"key": key, "payload_id": pid, "meta": {}}
    return EventEnvelope(run, seq, None, DomainEvent("fact_recorded", payload))


async def test_unknown_run_has_head_zero_and_no_events(store: Store) -> None:
    run = RunId.new()
    assert await store.head_seq(run) == 0
    assert await store.read_range(run) == []
    assert [e async for e in store.iter_events(run)] == []


async def test_append_returns_new_head_and_reads_back_exactly(store: Store) -> None:
    run = RunId.new()
    first = envs(run, 1, 3, ts=1_700_000_000_123)
    assert await store.append(run, 0, first) == 3
    assert await store.append(run, 3, envs(run, 4, 2)) == 5
    assert await store.head_seq(run) == 5
    got = await store.read_range(run)
    assert got[:3] == first
    assert [e.seq for e in got] == [1, 2, 3, 4, 5]
    assert got[0].ts_millis == 1_700_000_000_123 and got[3].ts_millis is None


async def test_read_range_is_inclusive_and_clamped(store: Store) -> None:
    run = RunId.new()
    await store.append(run, 0, envs(run, 1, 10))
    assert [e.seq for e in await store.read_range(run, 3, 5)] == [3, 4, 5]
    assert [e.seq for e in await store.read_range(run, 0, 2)] == [1, 2]
    assert [e.seq for e in await store.read_range(run, 9)] == [9, 10]
    assert [e.seq for e in await store.read_range(run, 9, 99)] == [9, 10]
    assert await store.read_range(run, 11) == []
    assert await store.read_range(run, 5, 4) == []


async def test_iter_events_streams_the_same_events_in_pages(store: Store) -> None:
    run = RunId.new()
    await store.append(run, 0, envs(run, 1, 25))
    streamed = [e async for e in store.iter_events(run, 2, 24, page_size=4)]
    assert streamed == await store.read_range(run, 2, 24)


async def test_empty_append_writes_nothing(store: Store) -> None:
    run = RunId.new()
    assert await store.append(run, 0, []) == 0
    assert await store.head_seq(run) == 0


async def test_stale_expected_seq_raises_concurrency_and_writes_nothing(store: Store) -> None:
    run = RunId.new()
    await store.append(run, 0, envs(run, 1, 2))
    with pytest.raises(ConcurrencyError) as err:
        await store.append(run, 1, envs(run, 2, 1))
    assert err.value.info.code == "event_store_concurrency"
    with pytest.raises(ConcurrencyError):
        await store.append(run, 5, envs(run, 6, 1))
    assert await store.head_seq(run) == 2
    assert len(await store.read_range(run)) == 2


@pytest.mark.parametrize("seqs", [[2], [1, 3], [1, 1], [0]])
async def test_non_contiguous_envelopes_refused(store: Store, seqs: list[int]) -> None:
    run = RunId.new()
    bad = [EventEnvelope(run, s, None, DomainEvent("x")) for s in seqs]
    with pytest.raises(StorageError) as err:
        await store.append(run, 0, bad)
    assert not isinstance(err.value, ConcurrencyError)
    assert err.value.info.code == "invalid_envelopes"
    assert await store.head_seq(run) == 0


async def test_envelope_checks_come_before_the_head_check(store: Store) -> None:
    run = RunId.new()
    await store.append(run, 0, envs(run, 1, 1))
    with pytest.raises(StorageError) as err:
        await store.append(run, 0, envs(run, 5, 1))  # stale AND non-contiguous
    assert err.value.info.code == "invalid_envelopes"


async def test_foreign_run_envelopes_refused(store: Store) -> None:
    run, other = RunId.new(), RunId.new()
    with pytest.raises(StorageError) as err:
        await store.append(run, 0, envs(run, 1, 1) + envs(other, 2, 1))
    assert err.value.info.code == "invalid_envelopes"
    assert await store.head_seq(run) == 0
    assert await store.head_seq(other) == 0


async def test_concurrent_appends_at_one_head_have_one_winner(store: Store) -> None:
    run = RunId.new()

    async def attempt(i: int) -> bool:
        env = EventEnvelope(run, 1, None, DomainEvent("who", i))
        try:
            await store.append(run, 0, [env])
            return True
        except ConcurrencyError:
            return False

    results = await asyncio.gather(*(attempt(i) for i in range(20)))
    assert results.count(True) == 1
    assert await store.head_seq(run) == 1


async def test_artifact_id_is_sha256_of_bytes(store: Store) -> None:
    data = b"hello artifact"
    aid = await store.put(ArtifactKind.OUTPUT, data)
    assert aid == hashlib.sha256(data).hexdigest()
    assert await store.get(aid) == data
    assert await store.exists(aid)


async def test_missing_answers_a_batch_of_ids_in_one_call(store: Store) -> None:
    held = await store.put(ArtifactKind.OUTPUT, b"held")
    absent = ArtifactId(hashlib.sha256(b"absent").hexdigest())
    assert await store.missing([held, absent, absent]) == {absent}
    assert await store.missing([]) == set()
    with pytest.raises(MfmError) as caught:
        await store.missing(["not an id"])  # type: ignore[list-item]
    assert caught.value.info.code == "invalid_id"


async def test_put_is_idempotent_under_another_kind(store: Store) -> None:
    a1 = await store.put(ArtifactKind.FACT_PAYLOAD, b"same")
    a2 = await store.put(ArtifactKind.other("custom"), b"same")
    assert a1 == a2
    assert await store.get(a1) == b"same"


async def test_empty_and_large_artifacts(store: Store) -> None:
    big = bytes(range(256)) * 8192  # 2 MiB
    for data in (b"", big):
        aid = await store.put(ArtifactKind.OUTPUT, data)
        assert await store.get(aid) == data


async def test_missing_artifact(store: Store) -> None:
    assert not await store.exists("c" * 64)
    with pytest.raises(NotFoundError):
        await store.get("c" * 64)


async def test_bind_fact_first_writer_wins(store: Store) -> None:
    run = RunId.new()
    await store.append(run, 0, envs(run, 1, 2))
    p1 = await store.put(ArtifactKind.FACT_PAYLOAD, b'{"n":1}')
    p2 = await store.put(ArtifactKind.FACT_PAYLOAD, b'{"n":2}')
    first = await store.bind_fact(run, "k", p1)
    assert (first.payload_id, first.inserted, first.seq) == (p1, True, 3)
    again = await store.bind_fact(run, "k", p2)
    assert (again.payload_id, again.inserted, again.seq) == (p1, False, 3)
    assert await store.head_seq(run) == 3
    (event,) = await store.read_range(run, 3)
    assert event.event == DomainEvent("fact_recorded", {"key": "k", "payload_id": p1, "meta": {}})
    assert await store.get_fact(run, "k") == p1
    assert await store.get_fact(run, "other") is None
    assert await store.facts(run) == {"k": p1}


async def test_bind_fact_on_a_new_run_starts_at_seq_one(store: Store) -> None:
    run = RunId.new()
    p = await store.put(ArtifactKind.FACT_PAYLOAD, b"1")
    assert (await store.bind_fact(run, "k", p)).seq == 1
    assert await store.head_seq(run) == 1


async def test_fact_keys_are_scoped_per_run(store: Store) -> None:
    r1, r2 = RunId.new(), RunId.new()
    p1 = await store.put(ArtifactKind.FACT_PAYLOAD, b"1")
    p2 = await store.put(ArtifactKind.FACT_PAYLOAD, b"2")
    assert (await store.bind_fact(r1, "k", p1)).inserted
    assert (await store.bind_fact(r2, "k", p2)).inserted
    assert await store.facts(r1) == {"k": p1}
    assert await store.facts(r2) == {"k": p2}


async def test_bind_fact_needs_the_payload_artifact(store: Store) -> None:
    run = RunId.new()
    with pytest.raises(NotFoundError):
        await store.bind_fact(run, "k", "d" * 64)
    assert await store.head_seq(run) == 0
    assert await store.facts(run) == {}


async def test_concurrent_bind_fact_has_exactly_one_winner(store: Store) -> None:
    run = RunId.new()
    pids = [await store.put(ArtifactKind.FACT_PAYLOAD, str(i).encode()) for i in range(16)]
    results = await asyncio.gather(*(store.bind_fact(run, "k", p) for p in pids))
    winners = [r for r in results if r.inserted]
    assert len(winners) == 1
    assert {r.payload_id for r in results} == {winners[0].payload_id}
    assert await store.head_seq(run) == 1


async def test_appended_fact_recorded_updates_bindings(store: Store) -> None:
    run = RunId.new()
    await put_ab(store)
    await store.append(run, 0, [fact_event(run, 1, "k", A)])
    assert await store.get_fact(run, "k") == A
    existing = await store.bind_fact(run, "k", B)
    assert (existing.payload_id, existing.inserted, existing.seq) == (A, False, 1)


async def test_rebinding_to_the_same_payload_is_accepted(store: Store) -> None:
    run = RunId.new()
    await put_ab(store)
    await store.append(run, 0, [fact_event(run, 1, "k", A), fact_event(run, 2, "k", A)])
    assert await store.append(run, 2, [fact_event(run, 3, "k", A)]) == 3
    assert await store.facts(run) == {"k": A}
    assert (await store.bind_fact(run, "k", A)).seq == 1


async def test_conflicting_fact_recorded_is_refused(store: Store) -> None:
    run = RunId.new()
    await put_ab(store)
    await store.append(run, 0, [fact_event(run, 1, "k", A)])
    with pytest.raises(ConcurrencyError) as err:
        await store.append(run, 1, [fact_event(run, 2, "j", A), fact_event(run, 3, "k", B)])
    assert err.value.info.code == "fact_binding_conflict"
    assert await store.head_seq(run) == 1
    assert await store.facts(run) == {"k": A}


async def test_conflict_inside_one_batch_is_refused(store: Store) -> None:
    run = RunId.new()
    await put_ab(store)
    with pytest.raises(ConcurrencyError) as err:
        await store.append(run, 0, [fact_event(run, 1, "k", A), fact_event(run, 2, "k", B)])
    assert err.value.info.code == "fact_binding_conflict"
    assert await store.head_seq(run) == 0
    assert await store.facts(run) == {}


@pytest.mark.parametrize("payload", [
    {"key": 5, "payload_id": A, "meta": {}},
    {"key": "", "payload_id": A, "meta": {}},
    {"key": "k", "payload_id": "not an id", "meta": {}},
    {"key": "k", "payload_id": A, "meta": {}, "extra": 1},
    {"key": "k"},
    ["k", A],
])
async def test_malformed_fact_recorded_is_refused(store: Store, payload: object) -> None:
    run = RunId.new()
    await put_ab(store)
    bad = EventEnvelope(run, 1, None, DomainEvent("fact_recorded", payload))
    with pytest.raises(StorageError) as err:
        await store.append(run, 0, [bad])
    assert err.value.info.code == "invalid_envelopes"
    assert await store.head_seq(run) == 0 and await store.facts(run) == {}


async def test_list_runs_tracks_status_op_and_head(store: Store) -> None:
    r1, r2 = RunId.new(), RunId.new()
    await put_ab(store)
    await store.append(r1, 0, [EventEnvelope(r1, 1, None, RunStarted("op", A, B)),
                               EventEnvelope(r1, 2, None, StateEntered("m.s.t", 0, B))])
    await store.append(r2, 0, [EventEnvelope(r2, 1, None, RunStarted("other_op", A, B))])
    await store.append(r2, 1, [EventEnvelope(r2, 2, None, RunCompleted(RunStatus.FAILED))])
    runs = {s.run_id: s for s in await store.list_runs()}
    assert set(runs) == {r1, r2}
    assert (runs[r1].op_id, runs[r1].status, runs[r1].head_seq) == ("op", "running", 2)
    assert (runs[r2].op_id, runs[r2].status, runs[r2].head_seq) == ("other_op", "failed", 2)
    assert runs[r2].created_millis <= runs[r2].updated_millis


async def test_store_is_an_async_context_manager(store: Store) -> None:
    async with store as s:
        assert s is store
    with pytest.raises(StorageError):
        await store.head_seq(RunId.new())
    await store.close()  # idempotent


async def test_unencodable_payload_is_refused_with_nothing_written(store: Store) -> None:
    run = RunId.new()
    bad = EventEnvelope(run, 1, None, DomainEvent("x", {"not json": {1, 2}}))
    with pytest.raises(StorageError) as err:
        await store.append(run, 0, [bad])
    assert err.value.info.code == "invalid_envelopes"
    assert await store.head_seq(run) == 0


async def test_stored_events_do_not_alias_caller_payloads(store: Store) -> None:
    run = RunId.new()
    payload = {"list": [1, 2]}
    await store.append(run, 0, [EventEnvelope(run, 1, None, DomainEvent("x", payload))])
    payload["list"].append(3)
    (stored,) = await store.read_range(run)
    assert isinstance(stored.event, DomainEvent)
    assert stored.event.payload == {"list": [1, 2]}


async def test_bind_fact_with_expected_seq_refuses_a_moved_head(store: Store) -> None:
    run = RunId.new()
    await store.append(run, 0, envs(run, 1, 2))
    pid = await store.put(ArtifactKind.FACT_PAYLOAD, b"1")
    with pytest.raises(ConcurrencyError) as err:
        await store.bind_fact(run, "k", pid, expected_seq=1)
    assert err.value.info.code == "event_store_concurrency"
    assert await store.head_seq(run) == 2 and await store.facts(run) == {}
    bound = await store.bind_fact(run, "k", pid, expected_seq=2)
    assert (bound.inserted, bound.seq) == (True, 3)
    again = await store.bind_fact(run, "k", pid, expected_seq=0)  # bound: nothing to refuse
    assert (again.inserted, again.seq) == (False, 3)


async def test_record_fact_stores_payload_binding_and_event_together(store: Store) -> None:
    run = RunId.new()
    data = b'{"price":42}'
    first = await store.record_fact(run, "k", data)
    assert (first.payload_id, first.inserted, first.seq) == (
        hashlib.sha256(data).hexdigest(), True, 1)
    assert await store.get(first.payload_id) == data
    assert await store.facts(run) == {"k": first.payload_id}
    (event,) = await store.read_range(run)
    assert isinstance(event.event, DomainEvent) and event.event.name == "fact_recorded"
    loser = await store.record_fact(run, "k", b'{"price":43}')
    assert (loser.payload_id, loser.inserted, loser.seq) == (first.payload_id, False, 1)
    assert not await store.exists(hashlib.sha256(b'{"price":43}').hexdigest())
    with pytest.raises(ConcurrencyError):
        await store.record_fact(run, "j", b"1", expected_seq=0)
    assert not await store.exists(hashlib.sha256(b"1").hexdigest())
    assert await store.head_seq(run) == 1


# Every write path applies the same input checks (issue 11 §3): a coded StorageError, nothing
# written, identical on every backend.


def code_of(exc: BaseException) -> str:
    assert isinstance(exc, StorageError), f"{type(exc).__name__}: {exc}"
    return exc.info.code


@pytest.mark.parametrize("data", [12, 10**8, "text", None, [1, 2]])
async def test_only_bytes_like_data_is_stored(store: Store, data: object) -> None:
    run = RunId.new()
    with pytest.raises(StorageError) as err:
        await store.put(ArtifactKind.OUTPUT, data)  # type: ignore[arg-type]
    assert code_of(err.value) == "invalid_argument"
    with pytest.raises(StorageError) as err:
        await store.record_fact(run, "k", data)  # type: ignore[arg-type]
    assert code_of(err.value) == "invalid_argument"
    assert await store.head_seq(run) == 0 and await store.facts(run) == {}
    assert not await store.exists(hashlib.sha256(bytes(12)).hexdigest())


async def test_bytearray_and_memoryview_are_bytes_like(store: Store) -> None:
    assert await store.put(ArtifactKind.OUTPUT, bytearray(b"ab")) == hashlib.sha256(
        b"ab").hexdigest()
    assert await store.get(await store.put(ArtifactKind.OUTPUT, memoryview(b"cd"))) == b"cd"


@pytest.mark.parametrize("bad", [None, "garbage", 5, b"3f2b8c1e"])
async def test_every_method_validates_its_run_id(store: Store, bad: object) -> None:
    pid = await store.put(ArtifactKind.FACT_PAYLOAD, b"1")
    calls = [
        lambda: store.head_seq(bad),  # type: ignore[arg-type]
        lambda: store.read_range(bad),  # type: ignore[arg-type]
        lambda: store.facts(bad),  # type: ignore[arg-type]
        lambda: store.get_fact(bad, "k"),  # type: ignore[arg-type]
        lambda: store.bind_fact(bad, "k", pid),  # type: ignore[arg-type]
        lambda: store.record_fact(bad, "k", b"1"),  # type: ignore[arg-type]
    ]
    for call in calls:
        with pytest.raises(StorageError) as err:
            await call()
        assert code_of(err.value) == "invalid_id"
    with pytest.raises(StorageError) as err:
        await store.append(bad, 0, [])  # type: ignore[arg-type]
    assert code_of(err.value) == "invalid_envelopes"
    assert await store.list_runs() == []


async def test_a_run_id_may_be_given_as_its_text(store: Store) -> None:
    run = RunId.new()
    await store.append(run, 0, envs(run, 1, 2))
    assert await store.head_seq(str(run).upper()) == 2  # type: ignore[arg-type]
    assert len(await store.read_range(str(run))) == 2  # type: ignore[arg-type]


@pytest.mark.parametrize("args", [(1, 2**70), (2**70, None), (1.0, None), (True, None),
                                  (1, "9"), (None, None)])
async def test_read_bounds_are_checked(store: Store, args: tuple[object, object]) -> None:
    run = RunId.new()
    await store.append(run, 0, envs(run, 1, 2))
    with pytest.raises(StorageError) as err:
        await store.read_range(run, *args)  # type: ignore[arg-type]
    assert code_of(err.value) == "invalid_argument"
    with pytest.raises(StorageError):
        _ = [e async for e in store.iter_events(run, *args)]  # type: ignore[arg-type]
    with pytest.raises(StorageError) as err:
        _ = [e async for e in store.iter_events(run, page_size=0)]
    assert code_of(err.value) == "invalid_argument"


@pytest.mark.parametrize("expected", [True, 1.0, -1, 2**63, "0"])
async def test_seqs_are_ints_not_bools(store: Store, expected: object) -> None:
    run = RunId.new()
    pid = await store.put(ArtifactKind.FACT_PAYLOAD, b"1")
    with pytest.raises(StorageError) as err:
        await store.append(run, expected, [])  # type: ignore[arg-type]
    assert code_of(err.value) == "invalid_envelopes"
    with pytest.raises(StorageError) as err:
        await store.bind_fact(run, "k", pid, expected_seq=expected)  # type: ignore[arg-type]
    assert code_of(err.value) == "invalid_argument"
    assert await store.head_seq(run) == 0


@pytest.mark.parametrize(("key", "code"), [
    ("", "invalid_fact_key"), ("bad\ud800key", "invalid_fact_key"), (5, "invalid_fact_key"),
    ("api_key=sk-123", "secrets_detected"), ("my Password", "secrets_detected"),
])
async def test_fact_keys_are_checked_on_every_path(store: Store, key: object, code: str) -> None:
    run = RunId.new()
    pid = await store.put(ArtifactKind.FACT_PAYLOAD, b"1")
    for call in (lambda: store.bind_fact(run, key, pid),  # type: ignore[arg-type]
                 lambda: store.record_fact(run, key, b"2"),  # type: ignore[arg-type]
                 lambda: store.append(run, 0, [fact_event(run, 1, key, pid)])):  # type: ignore[arg-type]
        with pytest.raises(StorageError) as err:
            await call()
        assert code_of(err.value) in {code, "invalid_envelopes"}
        if code == "secrets_detected":
            assert code_of(err.value) == code
    assert await store.head_seq(run) == 0 and await store.facts(run) == {}
    assert not await store.exists(hashlib.sha256(b"2").hexdigest())
    assert await store.get_fact(run, "bad\ud800key") is None


@pytest.mark.parametrize("event", [
    DomainEvent("x", {"api_key": "sk-123"}),
    DomainEvent("x", {"note": "my password is hunter2"}),
    DomainEvent("x", ["abandon ability able about above absent absorb abstract absurd abuse "
                      "access accident"]),
    DomainEvent("authorization_seen", {}),
])
async def test_secrets_in_domain_events_are_refused(store: Store, event: DomainEvent) -> None:
    run = RunId.new()
    with pytest.raises(StorageError) as err:
        await store.append(run, 0, [*envs(run, 1, 1), EventEnvelope(run, 2, None, event)])
    assert code_of(err.value) == "secrets_detected"
    assert await store.head_seq(run) == 0


async def test_secrets_in_fact_meta_are_refused(store: Store) -> None:
    run = RunId.new()
    await put_ab(store)
    payload = {"key": "k", "payload_id": A, "meta": {"token": "Bearer abc"}}
    with pytest.raises(StorageError) as err:
        await store.append(run, 0, [EventEnvelope(run, 1, None,
                                                  DomainEvent("fact_recorded", payload))])
    assert code_of(err.value) == "secrets_detected"
    assert await store.facts(run) == {}


@pytest.mark.parametrize("kind", [ArtifactKind.MANIFEST, ArtifactKind.CONTEXT_SNAPSHOT,
                                  ArtifactKind.FACT_PAYLOAD, ArtifactKind.OUTPUT])
@pytest.mark.parametrize("data", [b'{"password":"x"}', b'{"a":["ok","refresh_token"]}',
                                  b'{"a":"password","a":1}', b'"x\\u0070assword"'])
async def test_secrets_in_json_artifacts_are_refused(store: Store, kind: ArtifactKind,
                                                     data: bytes) -> None:
    with pytest.raises(StorageError) as err:
        await store.put(kind, data)
    assert code_of(err.value) == "secrets_detected"
    assert not await store.exists(hashlib.sha256(data).hexdigest())


async def test_secret_payloads_other_kinds_and_raw_bytes_are_stored_as_they_are(
        store: Store) -> None:
    secret = b'{"password":"ciphertext"}'
    assert await store.get(await store.put(ArtifactKind.SECRET_PAYLOAD, secret)) == secret
    assert await store.get(await store.put(ArtifactKind.other("blob"), secret)) == secret
    raw = b"\xff\xfe password \x00"
    assert await store.get(await store.put(ArtifactKind.FACT_PAYLOAD, raw)) == raw
    run = RunId.new()
    assert (await store.record_fact(run, "r", raw)).inserted
    with pytest.raises(StorageError) as err:
        await store.record_fact(run, "p", b'{"password":"x"}')
    assert code_of(err.value) == "secrets_detected"
    assert await store.head_seq(run) == 1


async def test_a_json_artifact_too_deep_to_check_is_refused(store: Store) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(StorageError) as err:
        await store.put(ArtifactKind.OUTPUT, deep)
    assert code_of(err.value) == "invalid_argument"


async def test_events_may_name_only_stored_artifacts(store: Store) -> None:
    run = RunId.new()
    await put_ab(store)
    missing = hashlib.sha256(b"never stored").hexdigest()
    bad = [
        [EventEnvelope(run, 1, None, RunStarted("op", A, missing))],
        [EventEnvelope(run, 1, None, StateEntered("m.s.t", 0, missing))],
        [EventEnvelope(run, 1, None, RunCompleted(RunStatus.COMPLETED, missing))],
        [EventEnvelope(run, 1, None, DomainEvent("x", {}, missing))],
        [fact_event(run, 1, "k", missing)],
        [EventEnvelope(run, 1, None, RunStarted("op", A, B)),
         EventEnvelope(run, 2, None, DomainEvent("x", {}, missing))],
    ]
    for envelopes in bad:
        with pytest.raises(NotFoundError) as err:
            await store.append(run, 0, envelopes)
        assert code_of(err.value) == "artifact_not_found"
        assert missing in str(err.value)
    assert await store.head_seq(run) == 0 and await store.facts(run) == {}
    assert await store.list_runs() == []
    assert await store.append(run, 0, [EventEnvelope(run, 1, None, RunStarted("op", A, B)),
                                       EventEnvelope(run, 2, None, DomainEvent("x", {}, A))]) == 2
