"""FactIndex and the fact recorders (SPEC §6)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from conftest import BACKENDS
from mfm_store import (
    ArtifactKind,
    ConcurrencyError,
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
from mfm_store.sqlite import SqliteStore
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


# Facts from many tasks in one group commit (SQLite: FactWrite.run_together), on real files.


async def _started(store: SqliteStore, run: RunId) -> None:
    """A run the store has written (its row known to the store: the fast path applies)."""
    await store.append(run, 0, [EventEnvelope(run, 1, None, DomainEvent("started", {}))])


async def test_batched_facts_on_one_key_first_writer_wins(tmp_path: Path) -> None:
    async with SqliteStore.open(tmp_path / "f.db") as store:
        run = RunId.new()
        await _started(store, run)
        payloads = [b'{"n":%d}' % i for i in range(20)]
        answers = await asyncio.gather(*(store.record_fact(run, "k", p) for p in payloads))
        winners = [a for a in answers if a.inserted]
        assert len(winners) == 1
        won = winners[0]
        assert won.seq == 2
        assert all(a == FactBinding(won.payload_id, False, 2) for a in answers if not a.inserted)
        assert await store.facts(run) == {"k": won.payload_id}
        assert await store.head_seq(run) == 2
        assert (await store.verify()).ok


async def test_batched_facts_of_many_runs_and_keys_all_land(tmp_path: Path) -> None:
    async with SqliteStore.open(tmp_path / "f.db") as store:
        runs = [RunId.new() for _ in range(30)]
        for run in runs[:20]:
            await _started(store, run)  # 10 runs are new to the store: the general path
        writes = [store.record_fact(run, f"k{i}", b'{"v":%d}' % i)
                  for run in runs for i in range(2)]  # two keys per run in one batch
        answers = await asyncio.gather(*writes)
        assert all(a.inserted for a in answers)
        for run in runs:
            first = 1 if run in runs[:20] else 0
            got = await store.facts(run)
            assert set(got) == {"k0", "k1"}
            assert await store.head_seq(run) == first + 2
        assert (await store.verify()).ok


async def test_one_bad_fact_in_a_batch_does_not_affect_the_others(tmp_path: Path) -> None:
    async with SqliteStore.open(tmp_path / "f.db") as store:
        runs = [RunId.new() for _ in range(10)]
        for run in runs:
            await _started(store, run)
        payload = await store.put(ArtifactKind.FACT_PAYLOAD, b'{"ok":1}')
        missing = artifact_id_for_bytes(b"never stored")
        writes = [store.bind_fact(run, "k", missing if i == 3 else payload)
                  for i, run in enumerate(runs)]
        answers = await asyncio.gather(*writes, return_exceptions=True)
        assert isinstance(answers[3], NotFoundError)
        for i, run in enumerate(runs):
            if i == 3:
                assert await store.facts(run) == {}
                assert await store.head_seq(run) == 1
            else:
                assert answers[i] == FactBinding(payload, True, 2)
                assert await store.facts(run) == {"k": payload}
        assert (await store.verify()).ok


async def test_batched_facts_check_expected_seq(tmp_path: Path) -> None:
    async with SqliteStore.open(tmp_path / "f.db") as store:
        runs = [RunId.new() for _ in range(8)]
        for run in runs:
            await _started(store, run)
        writes = [store.record_fact(run, "k", b'{"i":%d}' % i,
                                    expected_seq=0 if i == 5 else 1)
                  for i, run in enumerate(runs)]
        answers = await asyncio.gather(*writes, return_exceptions=True)
        assert isinstance(answers[5], ConcurrencyError)
        assert answers[5].info.code == "event_store_concurrency"
        assert await store.facts(runs[5]) == {}
        assert all(isinstance(a, FactBinding) and a.inserted and a.seq == 2
                   for i, a in enumerate(answers) if i != 5)
        # A key already bound is answered as bound, whatever expected_seq says.
        late = await store.record_fact(runs[0], "k", b'{"other":1}', expected_seq=0)
        assert late.inserted is False and late.seq == 2
        assert (await store.verify()).ok


async def test_batched_facts_when_another_writer_moved_one_head(tmp_path: Path) -> None:
    # One run of the batch has a stale head in the first store: the batch is rolled back and
    # every fact still lands, that one after the other writer's event.
    async with SqliteStore.open(tmp_path / "f.db") as one, \
            SqliteStore.open(tmp_path / "f.db") as two:
        runs = [RunId.new() for _ in range(10)]
        for run in runs:
            await _started(one, run)
        await two.append(runs[4], 1, [EventEnvelope(runs[4], 2, None, DomainEvent("x", {}))])
        answers = await asyncio.gather(*(one.record_fact(run, "k", b'{"i":%d}' % i)
                                         for i, run in enumerate(runs)))
        assert [a.seq for a in answers] == [3 if i == 4 else 2 for i in range(10)]
        assert all(a.inserted for a in answers)
        assert (await one.verify()).ok


async def test_facts_and_appends_interleaved_keep_every_row_checksum(tmp_path: Path) -> None:
    # The store keeps each run's checksum prefix between writes: facts, appends that set the
    # op id and status, then facts again, on several runs at once, must all verify.
    async with SqliteStore.open(tmp_path / "f.db") as store:
        runs = [RunId.new() for _ in range(5)]
        for run in runs:
            await _started(store, run)
        await asyncio.gather(*(store.record_fact(run, "a", b'{"a":1}') for run in runs))
        manifest = await store.put(ArtifactKind.FACT_PAYLOAD, b'{"manifest":1}')
        await asyncio.gather(*(store.append(run, 2, [EventEnvelope(
            run, 3, None, RunStarted("op", manifest, manifest))]) for run in runs))  # op id
        await asyncio.gather(*(store.record_fact(run, "b", b'{"b":1}') for run in runs))
        assert [await store.head_seq(run) for run in runs] == [4] * 5
        report = await store.verify()
        assert report.ok, report


async def test_fact_after_another_writer_moved_the_head(tmp_path: Path) -> None:
    # The first store's idea of the run's head is stale: its write must notice, in SQL.
    async with SqliteStore.open(tmp_path / "f.db") as one, \
            SqliteStore.open(tmp_path / "f.db") as two:
        run = RunId.new()
        await _started(one, run)
        assert (await two.record_fact(run, "a", b'{"a":1}')).seq == 2
        assert (await one.record_fact(run, "b", b'{"b":1}')).seq == 3
        again = await asyncio.gather(one.record_fact(run, "a", b'{"a":2}'),
                                     one.record_fact(run, "c", b'{"c":1}'))
        assert again[0].inserted is False and again[0].seq == 2
        assert again[1] == FactBinding(again[1].payload_id, True, 4)
        assert await one.head_seq(run) == 4
        assert (await one.verify()).ok


def test_fact_event_body_is_what_encode_event_makes() -> None:
    from mfm_store import _rules
    from mfm_store.events import encode_event
    from mfm_store.sqlite._fact_write import fact_event_body

    for key in ["k", "quote:1", "é\u2603 \"quoted\" \\", "x" * 300, "\U0001f600" * 40]:
        for refs in [(), (A,), (A, B)]:
            assert fact_event_body(key, C, refs) == encode_event(
                _rules.fact_recorded_event(key, C, refs))


def test_run_together_leaves_conflicts_and_shared_runs_to_the_one_by_one_path(
        tmp_path: Path) -> None:
    import sqlite3

    from mfm_store.sqlite._fact_write import FactWrite, artifact_row

    async def setup() -> tuple[RunId, RunId]:
        async with SqliteStore.open(tmp_path / "f.db") as store:
            r1, r2 = RunId.new(), RunId.new()
            await _started(store, r1)
            await _started(store, r2)
            await store.record_fact(r1, "taken", b"1")
            return r1, r2

    r1, r2 = asyncio.run(setup())
    conn = sqlite3.connect(tmp_path / "f.db", isolation_level=None)
    try:
        rows = {rid: conn.execute("SELECT run_pk, head_seq, op_id, status, created_ms FROM runs"
                                  " WHERE run_id = ?", (rid,)).fetchone()
                for rid in (str(r1), str(r2))}

        def write(rid: RunId, key: str, data: bytes) -> FactWrite:
            row = artifact_row(data)
            return FactWrite(str(rid), key, ArtifactId(row[0]), None, row, (),
                             tuple(rows[str(rid)]))  # type: ignore[arg-type]

        cur = conn.cursor()
        cur.execute("BEGIN IMMEDIATE")
        # The same run twice in one batch, and a key already bound: not together.
        assert FactWrite.run_together(cur, [write(r1, "x", b"2"), write(r1, "y", b"3")]) is None
        cur.execute("SAVEPOINT s")
        assert FactWrite.run_together(cur, [write(r1, "taken", b"4"),
                                            write(r2, "z", b"5")]) is None
        cur.execute("ROLLBACK TO s")  # as the writer does: what it wrote goes
        results = FactWrite.run_together(cur, [write(r1, "x", b"6"), write(r2, "z", b"7")])
        assert results is not None
        assert [(b.inserted, b.seq) for b, _ in results] == [(True, 3), (True, 2)]
        cur.execute("COMMIT")
    finally:
        conn.close()
