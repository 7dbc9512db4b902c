"""Push / pull between stores (mfm_store.sync): round trips, increments, refusals, cost."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from helpers.cli import env
from helpers.engine import CountingFactory, record, recorded_plan
from helpers.sync_child import extend, seed, seed_run

from conftest import pg_dsn
from mfm_store import (
    ArtifactId,
    DomainEvent,
    EventEnvelope,
    MemoryStore,
    RunId,
    RunStatus,
    Store,
    open_store,
)
from mfm_store.engine import ReplayOutcome, replay, start
from mfm_store.errors import CODE_CONCURRENCY, NotFoundError, StorageError
from mfm_store.postgres import PostgresStore
from mfm_store.sqlite import SqliteStore
from mfm_store.sync import CODE_SYNC_DIVERGED, SyncReport, copy_to_file, pull, push, sync
from mfm_store.transfer import export_jsonl


def pg_target() -> str:
    return f"{pg_dsn()}#schema=s_{uuid.uuid4().hex[:16]}"


async def run_export(store: Any, run: RunId) -> bytes:
    out = io.BytesIO()
    await export_jsonl(store, out, run_id=run)
    return out.getvalue()


async def events_of(store: Store, run: RunId) -> list[str]:
    return [e.to_json_text() for e in await store.read_range(run)]


async def assert_same_runs(src: Any, dst: Any, runs: list[RunId]) -> None:
    for run in runs:
        if hasattr(src, "iter_artifacts") and hasattr(dst, "iter_artifacts"):
            assert await run_export(src, run) == await run_export(dst, run), run
        else:
            assert await events_of(src, run) == await events_of(dst, run), run
            assert await src.facts(run) == await dst.facts(run)


def copied(report: SyncReport) -> tuple[int, int, int, int]:
    return report.runs_added, report.runs_extended, report.events_copied, len(report.problems)


# round trips

async def test_file_to_file_round_trip_then_nothing_to_copy(tmp_path: Path) -> None:
    async with SqliteStore.open(tmp_path / "a.db") as a, \
            SqliteStore.open(tmp_path / "b.db") as b:
        runs = await seed(a, 6, 40)
        heads = {s.run_id: s.head_seq for s in await a.list_runs()}
        seen: list[tuple[str, int, int | None]] = []
        report = await push(a, b, progress=lambda p, n, t: seen.append((p, n, t)))
        assert report.ok and copied(report) == (6, 0, sum(heads.values()), 0)
        assert seen[0] == ("sync", 0, sum(heads.values()))
        assert sum(n for _, n, _ in seen) == sum(heads.values())
        stats = await b.stats()
        assert report.artifacts_copied == stats["artifacts"] == (await a.stats())["artifacts"]
        await assert_same_runs(a, b, runs)
        assert (await a.verify()).ok and (await b.verify()).ok
        for run in runs:
            assert await b.facts(run) == await a.facts(run) != {}

        again = await push(a, b)
        assert again.ok and copied(again) == (0, 0, 0, 0)
        assert again.runs_unchanged == 6 and again.artifacts_copied == 0
        assert await b.stats() == stats | {"file_bytes": (await b.stats())["file_bytes"],
                                           "wal_bytes": (await b.stats())["wal_bytes"]}


async def test_file_to_postgres_to_file_round_trip(tmp_path: Path) -> None:
    target = pg_target()
    async with SqliteStore.open(tmp_path / "edge.db") as edge, \
            open_store(target) as centre, SqliteStore.open(tmp_path / "laptop.db") as laptop:
        assert isinstance(centre, PostgresStore)
        runs = await seed(edge, 5, 30)
        up = await push(edge, centre)
        assert up.ok and up.runs_added == 5
        down = await pull(laptop, centre)
        assert down.ok and down.runs_added == 5 and down.events_copied == up.events_copied
        await assert_same_runs(edge, centre, runs)
        await assert_same_runs(centre, laptop, runs)
        for store in (edge, centre, laptop):
            assert (await store.verify()).ok  # type: ignore[attr-defined]
        assert copied(await push(edge, centre)) == (0, 0, 0, 0)
        assert copied(await pull(laptop, centre)) == (0, 0, 0, 0)


async def test_memory_on_either_side(tmp_path: Path) -> None:
    """MemoryStore cannot list its artifacts: their kinds follow from the events naming them."""
    mem = MemoryStore()
    async with SqliteStore.open(tmp_path / "a.db") as a:
        runs = await seed(mem, 3, 20)
        report = await push(mem, a)
        assert report.ok and report.runs_added == 3
        back = MemoryStore()
        assert (await pull(back, a)).runs_added == 3
        await assert_same_runs(mem, back, runs)
        # The kinds read back from the file are the roles the events give them.
        out = await run_export(a, runs[0])
        kinds = {json.loads(line)["kind"] if "artifact" in json.loads(line) else None
                 for line in out.splitlines()} - {None}
        assert kinds == {"Manifest", "ContextSnapshot", "Output", "FactPayload"}
        assert (await a.verify()).ok
    await mem.close()
    await back.close()


# increments and refusals

async def test_incremental_sync_moves_only_new_events_and_artifacts(tmp_path: Path) -> None:
    async with SqliteStore.open(tmp_path / "a.db") as a, \
            SqliteStore.open(tmp_path / "b.db") as b:
        runs = await seed(a, 8, 25)
        await push(a, b)
        before = {s.run_id: s.head_seq for s in await a.list_runs()}
        artifacts_before = (await a.stats())["artifacts"]
        for run in runs[:3]:
            await extend(a, run, 10, tag="more")
        new_run = await seed_run(a, 12, tag="new")
        after = {s.run_id: s.head_seq for s in await a.list_runs()}
        new_events = sum(after.values()) - sum(before.values())
        new_artifacts = (await a.stats())["artifacts"] - artifacts_before

        report = await push(a, b)
        assert report.ok
        assert (report.runs_added, report.runs_extended, report.runs_unchanged) == (1, 3, 5)
        assert report.events_copied == new_events
        # The new run shares the manifest: found there, not sent again.
        assert report.artifacts_copied == new_artifacts
        assert report.artifacts_present == 1
        # The extended runs were compared up to the old heads, nothing else read.
        assert report.events_compared == sum(before[r] for r in runs[:3])
        await assert_same_runs(a, b, [*runs, new_run])
        assert (await b.verify()).ok


async def _different_history(store: Store, run: RunId, events: int) -> None:
    await seed_run(store, events, tag="other", run=run)


async def test_a_diverging_run_is_refused_untouched_and_the_others_copied(
        tmp_path: Path) -> None:
    async with SqliteStore.open(tmp_path / "a.db") as a, \
            SqliteStore.open(tmp_path / "b.db") as b:
        runs = await seed(a, 4, 20)
        # b holds runs[1] with another history (from its first event: another initial
        # snapshot), and a prefix of runs[2] whose last event differs.
        await _different_history(b, runs[1], 30)
        prefix = await a.read_range(runs[2], 1, 5)
        await push(a, b, runs=[runs[0]])
        for env in prefix[:4]:
            for ref in _refs(env):
                await b.put(*(await _artifact(a, ref)))
        await b.append(runs[2], 0, prefix[:4])
        await b.append(runs[2], 4, [EventEnvelope(runs[2], 5, None,
                                                  DomainEvent("other", {"x": 1}, None))])
        kept = {r: await run_export(b, r) for r in runs[1:3]}

        report = await push(a, b)
        assert not report.ok
        assert [(p.run_id, p.code, p.seq) for p in report.problems] == [
            (runs[1], CODE_SYNC_DIVERGED, 1), (runs[2], CODE_SYNC_DIVERGED, 5)]
        assert "diverges at seq 1" in report.problems[0].message
        assert report.diverged == report.problems
        assert (report.runs_added, report.runs_unchanged) == (1, 1)
        for run in runs[1:3]:
            assert await run_export(b, run) == kept[run]
        await assert_same_runs(a, b, [runs[0], runs[3]])
        assert (await b.verify()).ok
        # Still refused the next time, still untouched.
        assert [p.run_id for p in (await push(a, b)).problems] == runs[1:3]
        assert await run_export(b, runs[1]) == kept[runs[1]]


def _refs(env: EventEnvelope) -> list[str]:
    from mfm_store._rules import artifact_refs, fact_binding_of

    refs = list(artifact_refs(env.event))
    binding = fact_binding_of(env.event)
    return refs + ([binding[1]] if binding else [])


async def _artifact(store: SqliteStore, aid: str) -> tuple[Any, bytes]:
    async for _, kind, data in store.iter_artifacts([aid]):
        return kind, data
    raise AssertionError(aid)


async def test_destination_ahead_and_full_check(tmp_path: Path) -> None:
    async with SqliteStore.open(tmp_path / "a.db") as a, \
            SqliteStore.open(tmp_path / "b.db") as b:
        runs = await seed(a, 3, 20)
        await push(a, b)
        await extend(b, runs[0], 6)  # the destination went on with runs[0]
        report = await push(a, b)
        assert report.ok and (report.runs_ahead, report.runs_unchanged) == (1, 2)
        # A run changed under an equal head is found only by a full check.
        other = await seed_run(b, 20, tag="x")
        twin = await seed_run(a, 20, tag="y", run=other)
        assert await a.head_seq(twin) == await b.head_seq(twin)
        assert (await push(a, b)).ok
        full = await push(a, b, full_check=True)
        assert [(p.run_id, p.code) for p in full.problems] == [(twin, CODE_SYNC_DIVERGED)]
        assert full.events_compared == sum([await a.head_seq(r) for r in runs])


async def test_only_the_runs_asked_for(tmp_path: Path) -> None:
    async with SqliteStore.open(tmp_path / "a.db") as a, \
            SqliteStore.open(tmp_path / "b.db") as b:
        runs = await seed(a, 4, 12)
        report = await push(a, b, runs=[str(runs[2]), runs[0], runs[2]])
        assert report.runs == 2 and report.runs_added == 2
        assert {s.run_id for s in await b.list_runs()} == {runs[0], runs[2]}
        missing = RunId.new()
        with pytest.raises(NotFoundError) as caught:
            await push(a, b, runs=[runs[1], missing])
        assert caught.value.info.code == "run_not_found" and str(missing) in str(caught.value)
        assert await b.head_seq(runs[1]) == 0  # nothing written


class _WriterBetweenBatches:
    """A source whose second read of ``run`` first lets another writer append to that run at
    the destination (a real append, through a second handle on the destination file)."""

    def __init__(self, inner: SqliteStore, other: SqliteStore, run: RunId) -> None:
        self._inner, self._other, self._run = inner, other, run
        self._reads = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def read_range(self, run_id: RunId, from_seq: int = 1,
                         to_seq: int | None = None) -> list[EventEnvelope]:
        if run_id == self._run:
            self._reads += 1
            if self._reads == 2:
                head = await self._other.head_seq(run_id)
                await self._other.append(run_id, head, [EventEnvelope(
                    run_id, head + 1, None, DomainEvent("intruder", {}, None))])
        return await self._inner.read_range(run_id, from_seq, to_seq)

    def iter_artifacts(self, ids: Any = None) -> AsyncIterator[Any]:
        return self._inner.iter_artifacts(ids)


async def test_a_writer_at_the_destination_fails_that_run_cleanly(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mfm_store.sync as sync_mod

    monkeypatch.setattr(sync_mod, "_EVENT_BATCH", 10)
    async with SqliteStore.open(tmp_path / "a.db") as a, \
            SqliteStore.open(tmp_path / "b.db") as b, \
            SqliteStore.open(tmp_path / "b.db") as b2:
        runs = await seed(a, 3, 40)
        src: Any = _WriterBetweenBatches(a, b2, runs[1])
        report = await sync(src, b, concurrency=1)
        assert [(p.run_id, p.code) for p in report.problems] == [(runs[1], CODE_CONCURRENCY)]
        assert report.runs_added == 2
        # The first batch and the intruder's event are there, nothing interleaved.
        stream = await b.read_range(runs[1])
        assert [e.to_json_text() for e in stream[:10]] == (await events_of(a, runs[1]))[:10]
        assert len(stream) == 11 and isinstance(stream[10].event, DomainEvent)
        assert (await b.verify()).ok
        # Next time the run is a different history: refused, never merged.
        again = await sync(a, b)
        assert [(p.run_id, p.code, p.seq) for p in again.problems] == [
            (runs[1], CODE_SYNC_DIVERGED, 11)]


# cost

class _Counting:
    """Counts the store methods a sync calls (the calls go to the real store)."""

    def __init__(self, inner: Store) -> None:
        self._inner = inner
        self.calls: dict[str, int] = {}

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] = self.calls.get(name, 0) + 1
            return attr(*args, **kwargs)
        return counted


async def test_a_repeated_sync_costs_one_heads_query_per_side(tmp_path: Path) -> None:
    async with SqliteStore.open(tmp_path / "a.db") as a, \
            SqliteStore.open(tmp_path / "b.db") as b:
        runs = await seed(a, 30, 10)
        await push(a, b)
        await extend(a, runs[7], 5)
        src, dst = _Counting(a), _Counting(b)
        report = await sync(src, dst)  # type: ignore[arg-type]
        assert report.runs_extended == 1 and report.runs_unchanged == 29
        # One heads query each; reads and writes for the one changed run only.
        assert src.calls.pop("list_runs") == dst.calls.pop("list_runs") == 1
        assert src.calls.pop("read_range") == 2  # compare the old prefix, then the new events
        assert dst.calls.pop("read_range") == 1 and dst.calls.pop("append") == 1
        src2, dst2 = _Counting(a), _Counting(b)
        await sync(src2, dst2)  # type: ignore[arg-type]
        assert src2.calls == dst2.calls == {"list_runs": 1}


class _BatchedMemory(MemoryStore):
    """A MemoryStore counting the batched ``missing(ids)`` questions sync asks."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[int] = []
        self.exists_calls = 0

    async def missing(self, artifact_ids: Any) -> set[ArtifactId]:
        ids = list(artifact_ids)
        self.batches.append(len(ids))
        return await super().missing(ids)

    async def exists(self, artifact_id: ArtifactId) -> bool:
        self.exists_calls += 1
        return await super().exists(artifact_id)


async def test_artifacts_are_asked_for_in_batches_when_the_store_can(tmp_path: Path) -> None:
    async with SqliteStore.open(tmp_path / "a.db") as a:
        runs = await seed(a, 2, 60)
        dst = _BatchedMemory()
        report = await push(a, dst, concurrency=1)
        assert report.ok and dst.exists_calls == 0
        # One question per batch of events (60 events each), the shared manifest asked once.
        assert len(dst.batches) == 2 and sum(dst.batches) == report.artifacts_copied
        await assert_same_runs(a, dst, runs)
        await dst.close()


# replay of a pulled file

async def test_a_pulled_file_replays_offline_as_the_source_run(tmp_path: Path) -> None:
    async with open_store(pg_target()) as centre:
        result = await start(centre, recorded_plan(), {"start": 1},
                             transports=CountingFactory(fail_first=1))
        assert result.status is RunStatus.COMPLETED
        await seed(centre, 3, 10)
        async with SqliteStore.open(tmp_path / "laptop.db") as laptop:
            report = await pull(laptop, centre, runs=[result.run_id])
            assert report.ok and report.runs_added == 1
            assert [s.run_id for s in await laptop.list_runs()] == [result.run_id]
    replayed = await replay(tmp_path / "laptop.db", result.run_id, recorded_plan())
    assert replayed.outcome is ReplayOutcome.IDENTICAL, str(replayed)
    assert replayed.states_matched == 3
    # Identical to replaying the source itself: a file recorded the same way.
    source_run = await record(tmp_path / "direct.db")
    direct = await replay(tmp_path / "direct.db", source_run, recorded_plan())
    assert direct.outcome is replayed.outcome and direct.states_matched == 3


async def test_copy_of_a_postgres_store_to_a_new_compact_file(tmp_path: Path) -> None:
    async with open_store(pg_target()) as centre:
        runs = await seed(centre, 4, 20)
        result = await start(centre, recorded_plan(), {"start": 1},
                             transports=CountingFactory(fail_first=1))
        report = await copy_to_file(centre, tmp_path / "copy.db")
        assert report.ok and report.runs_added == 5
        with pytest.raises(StorageError) as caught:
            await copy_to_file(centre, tmp_path / "copy.db", runs=runs[:1])
        assert caught.value.info.code == "destination_exists"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["copy.db"]
        async with SqliteStore.open(tmp_path / "copy.db", read_only=True) as copy:
            await assert_same_runs(centre, copy, [*runs, result.run_id])
            assert (await copy.verify()).ok
    replayed = await replay(tmp_path / "copy.db", result.run_id, recorded_plan())
    assert replayed.outcome is ReplayOutcome.IDENTICAL, str(replayed)


# command line

def sync_cli(*args: str | Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "mfm_store._sync_command", *map(str, args)],
                          capture_output=True, timeout=120, env=env())


async def test_cli_push_pull_json_and_exit_codes(tmp_path: Path) -> None:
    edge, copy, laptop = tmp_path / "edge.db", tmp_path / "copy.db", tmp_path / "laptop.db"
    async with SqliteStore.open(edge) as a:
        runs = await seed(a, 3, 15)
    target = pg_target()

    done = sync_cli("push", "--db", edge, copy, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["runs_added"] == 3 and json.loads(done.stdout)["ok"]
    again = sync_cli("--db", edge, "push", copy)
    assert again.returncode == 0 and b"0 events copied" in again.stdout
    assert sync_cli("push", "--db", edge, target).returncode == 0
    pulled = sync_cli("pull", "--db", laptop, target, "--run", str(runs[1])[:8], "--json")
    assert pulled.returncode == 0, pulled.stderr
    assert json.loads(pulled.stdout)["runs_added"] == 1
    async with SqliteStore.open(laptop, read_only=True) as lap, \
            SqliteStore.open(edge, read_only=True) as a:
        assert [s.run_id for s in await lap.list_runs()] == [runs[1]]
        await assert_same_runs(a, lap, [runs[1]])

    # A diverging run: exit 1, listed, the others copied.
    async with SqliteStore.open(tmp_path / "other.db") as o:
        await seed_run(o, 20, tag="zz", run=runs[0])
    diverged = sync_cli("push", "--db", edge, tmp_path / "other.db", "--json")
    assert diverged.returncode == 1
    body = json.loads(diverged.stdout)
    assert [(p["run_id"], p["code"]) for p in body["problems"]] == [
        (str(runs[0]), CODE_SYNC_DIVERGED)]
    assert body["runs_added"] == 2

    missing = sync_cli("push", "--db", edge, copy, "--run", "ffffffff")
    assert missing.returncode == 4 and b"[run_not_found]" in missing.stderr
    absent = sync_cli("pull", "--db", laptop, tmp_path / "nope.db")
    assert absent.returncode == 3 and b"[store_not_found]" in absent.stderr
    same = sync_cli("push", "--db", edge, edge)
    assert same.returncode == 2 and b"Traceback" not in same.stderr
    assert not (tmp_path / "nope.db").exists()
