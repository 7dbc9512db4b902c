"""Forking a run from a decided state (issue 19), on every backend and across stores."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from helpers.engine import S1, S2, S3, stream
from helpers.fork import FIXED, S4, AskedFactory, failed_run, make_plan

from mfm_store import (
    ArtifactId,
    ArtifactKind,
    DomainEvent,
    EventEnvelope,
    MemoryStore,
    RunId,
    RunStarted,
    RunStatus,
    StateEntered,
    StorageError,
    Store,
)
from mfm_store.engine import (
    Context,
    EventRecorder,
    ExecutionPlan,
    ForkOrigin,
    InvalidPlanError,
    PlanState,
    RunError,
    fork,
    fork_origin,
    replay,
    replay_store,
    resume,
    start,
)
from mfm_store.engine.errors import CODE_PLAN_OP_ID_MISMATCH
from mfm_store.live_io import IoCall
from mfm_store.sqlite import SqliteStore
from mfm_store.transfer import export_jsonl


def wire(envs: list[EventEnvelope]) -> list[Any]:
    return [e.to_json() for e in envs]


async def export_bytes(store: SqliteStore, run_id: RunId) -> bytes:
    out = io.BytesIO()
    await export_jsonl(store, out, run_id=run_id)
    return out.getvalue()


def derived(keys: dict[str, Any], run_id: RunId) -> dict[str, Any]:
    """The time/random fact keys of ``run_id`` with the run id taken out."""
    tag = f"|run:{run_id}|"
    return {k.replace(tag, "|run:*|"): v for k, v in keys.items() if tag in k}


async def test_fork_at_the_failing_state_completes_asking_only_for_the_later_facts(
        store: Store) -> None:
    source = await failed_run(store)
    before = wire(await stream(store, source))
    runs_before = await store.list_runs()

    forked = await fork(store, source, at_state=S3, plan=FIXED)
    assert forked.source_run_id == source and forked.state_id == S3
    assert forked.run_id != source and forked.artifacts_copied == 0
    transport = AskedFactory()
    result = await resume(store, forked.run_id, FIXED, transports=transport)
    assert result.status is RunStatus.COMPLETED, result.error
    assert transport.asked == ["quote3", "quote4"]
    assert result.final_context["price"] == 1 and result.final_context["q3"] == 1

    # The source is untouched.
    assert wire(await stream(store, source)) == before
    assert [s for s in await store.list_runs() if s.run_id == source] == [
        s for s in runs_before if s.run_id == source]

    # The new stream: RunStarted, run_forked, then the source's events up to s2's completion.
    src_events = await stream(store, source)
    new_events = await stream(store, forked.run_id)
    assert new_events[0].event == src_events[0].event
    assert new_events[1].event == DomainEvent("run_forked", {
        "source_run_id": str(source), "source_seq": forked.source_seq, "state_id": S3,
        "reuse_facts": "before"})
    assert new_events[1].to_json()["event"] == {"Domain": {"name": "run_forked", "payload": {
        "reuse_facts": "before", "source_run_id": str(source),
        "source_seq": forked.source_seq, "state_id": S3}, "payload_ref": None}}
    cut = forked.source_seq
    assert forked.events_copied == cut and forked.facts_rebound == 2
    inherited = [e.event for e in new_events[2:cut + 1]]
    assert len(inherited) == cut - 1
    tag_old, tag_new = f"|run:{source}|", f"|run:{forked.run_id}|"
    for ours, theirs in zip(inherited, [e.event for e in src_events[1:cut]], strict=True):
        if isinstance(theirs, DomainEvent) and tag_old in theirs.payload["key"]:
            assert ours == DomainEvent(theirs.name, {**theirs.payload, "key": theirs.payload[
                "key"].replace(tag_old, tag_new)})
        else:
            assert ours == theirs
    assert isinstance(new_events[cut + 1].event, StateEntered)
    assert new_events[cut + 1].event.state_id == S3

    # Facts: those before s3 bound to the same payloads; time/random under the new run id.
    src_facts, new_facts = await store.facts(source), await store.facts(forked.run_id)
    assert new_facts["price"] == src_facts["price"] and new_facts["rate"] == src_facts["rate"]
    old_derived, new_derived = derived(src_facts, source), derived(new_facts, forked.run_id)
    assert len(old_derived) == 2
    assert all(new_derived[k] == v for k, v in old_derived.items())
    assert new_facts["quote3"] != src_facts["quote3"]  # asked again: not carried over

    assert await fork_origin(store, forked.run_id) == ForkOrigin(
        source_run_id=source, source_seq=cut, state_id=S3, reuse_facts="before")
    assert await fork_origin(store, source) is None

    report = await replay_store(store, forked.run_id, FIXED)
    assert report.identical and report.source_finished and report.states_matched == 4, \
        str(report)


async def test_the_source_file_and_export_are_byte_identical_and_verify_is_clean(
        tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    async with SqliteStore.open(path) as store:
        source = await failed_run(store)
        exported = await export_bytes(store, source)
        events = wire(await stream(store, source))
        forked = await fork(store, source, at_state=S3, plan=FIXED)
        result = await resume(store, forked.run_id, FIXED, transports=AskedFactory())
        assert result.status is RunStatus.COMPLETED
        assert await export_bytes(store, source) == exported
        assert wire(await stream(store, source)) == events
        report = await store.verify()
        assert report.ok, str(report)
    # A copy of the file replays the fork offline, identical.
    offline = await replay(path, forked.run_id, FIXED)
    assert offline.identical, str(offline)


async def test_fork_of_a_fork(store: Store) -> None:
    source = await failed_run(store)
    first = await fork(store, source, at_state=S3, plan=FIXED)
    await resume(store, first.run_id, FIXED, transports=AskedFactory())
    second = await fork(store, first.run_id, at_state=S4, plan=FIXED)
    transport = AskedFactory()
    result = await resume(store, second.run_id, FIXED, transports=transport)
    assert result.status is RunStatus.COMPLETED
    assert transport.asked == ["quote4"]
    assert (await fork_origin(store, second.run_id)) == ForkOrigin(
        source_run_id=first.run_id, source_seq=second.source_seq, state_id=S4,
        reuse_facts="before")
    # Its ancestry: the first fork's run_forked event is inherited right after its own.
    events = await stream(store, second.run_id)
    assert ForkOrigin.from_event(events[2].event) == ForkOrigin(
        source_run_id=source, source_seq=first.source_seq, state_id=S3, reuse_facts="before")
    facts = await store.facts(second.run_id)
    first_facts = await store.facts(first.run_id)
    assert facts["quote3"] == first_facts["quote3"]
    # The time and random facts of s1, s2 (and s3) follow the run id to the second fork.
    old = derived(await store.facts(source), source)
    new = derived(facts, second.run_id)
    assert all(new[k] == v for k, v in old.items()) and len(new) == 3
    report = await replay_store(store, second.run_id, FIXED)
    assert report.identical, str(report)


async def test_fork_at_the_first_state_starts_over_from_the_initial_context(
        store: Store) -> None:
    source = await failed_run(store)
    forked = await fork(store, source, at_state=S1, plan=FIXED)
    assert forked.source_seq == 1 and forked.events_copied == 1 and forked.head_seq == 2
    transport = AskedFactory()
    result = await resume(store, forked.run_id, FIXED, transports=transport)
    assert result.status is RunStatus.COMPLETED
    assert transport.asked == ["price", "rate", "quote3", "quote4"]
    assert result.final_context["limit"] == 7
    assert (await replay_store(store, forked.run_id, FIXED)).identical


async def test_reuse_all_binds_the_later_explicit_facts_too(store: Store) -> None:
    source = await failed_run(store)
    forked = await fork(store, source, at_state=S3, plan=FIXED, reuse_facts="all")
    assert forked.facts_reused == 1
    transport = AskedFactory()
    result = await resume(store, forked.run_id, FIXED, transports=transport)
    assert result.status is RunStatus.COMPLETED
    assert transport.asked == ["quote4"]  # quote3 answered by the source's fact
    assert (await store.facts(forked.run_id))["quote3"] == (await store.facts(source))["quote3"]
    origin = await fork_origin(store, forked.run_id)
    assert origin is not None and origin.reuse_facts == "all"
    assert (await replay_store(store, forked.run_id, FIXED)).identical


async def test_fork_at_a_state_the_run_never_reached_is_refused(store: Store) -> None:
    source = await failed_run(store)
    runs = await store.list_runs()
    with pytest.raises(RunError) as err:
        await fork(store, source, at_state=S4, plan=FIXED)
    assert err.value.info.code == "fork_state_not_reached"
    assert S4 in str(err.value) and S3 in str(err.value)
    with pytest.raises(RunError) as err:
        await fork(store, source, at_state="machine.main.nowhere")
    assert err.value.info.code == "fork_state_not_reached"
    assert await store.list_runs() == runs


async def test_unknown_run_and_bad_arguments_are_refused(store: Store) -> None:
    source = await failed_run(store)
    with pytest.raises(StorageError) as err:
        await fork(store, RunId.new(), at_state=S1)
    assert err.value.info.code == "run_not_found"
    with pytest.raises(RunError) as err2:
        await fork(store, source, at_state=S1, reuse_facts="some")  # type: ignore[arg-type]
    assert err2.value.info.code == "invalid_argument"
    with pytest.raises(ValueError, match="invalid state_id"):
        await fork(store, source, at_state="not a state")
    with pytest.raises(StorageError) as err:
        await fork(store, source, at_state=S1, new_run_id=source)
    assert err.value.info.code == "run_already_exists"
    assert len(await store.list_runs()) == 1


async def test_a_plan_whose_op_id_differs_is_refused_as_resume_refuses_it(
        store: Store) -> None:
    source = await failed_run(store)
    runs = await store.list_runs()
    with pytest.raises(InvalidPlanError) as err:
        await fork(store, source, at_state=S3, plan=make_plan(s3_fixed=True, op="other"))
    assert err.value.info.code == CODE_PLAN_OP_ID_MISMATCH == "plan_op_id_mismatch"
    # resume gives the same code for the same plan (on a fork, which has not finished).
    forked = await fork(store, source, at_state=S3)
    with pytest.raises(InvalidPlanError) as err:
        await resume(store, forked.run_id, make_plan(s3_fixed=True, op="other"))
    assert err.value.info.code == CODE_PLAN_OP_ID_MISMATCH
    assert len(await store.list_runs()) == len(runs) + 1


async def test_a_plan_that_would_run_another_state_first_is_refused(store: Store) -> None:
    source = await failed_run(store)
    plan = make_plan(s3_fixed=True, extra_before_s3=True)
    with pytest.raises(InvalidPlanError) as err:
        await fork(store, source, at_state=S3, plan=plan)
    assert err.value.info.code == "fork_state_not_next"
    without_s3 = ExecutionPlan("op", [s for s in FIXED.states if s.state_id != S3])
    with pytest.raises(InvalidPlanError) as err:
        await fork(store, source, at_state=S3, plan=without_s3)
    assert err.value.info.code == "recovery_state_not_in_plan"
    assert len(await store.list_runs()) == 1


async def test_fork_on_a_read_only_store_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    async with SqliteStore.open(path) as store:
        source = await failed_run(store)
    before = path.read_bytes()
    async with SqliteStore.open(path, read_only=True) as ro:
        with pytest.raises(StorageError) as err:
            await fork(ro, source, at_state=S3, plan=FIXED)
        assert err.value.info.code == "store_read_only"
        assert len(await ro.list_runs()) == 1
    assert path.read_bytes() == before


@pytest.mark.parametrize("target_kind", ["sqlite", "memory"])
async def test_fork_from_a_read_only_copy_into_another_store(tmp_path: Path,
                                                             target_kind: str) -> None:
    live = tmp_path / "live.db"
    async with SqliteStore.open(live) as store:
        source = await failed_run(store)
        await store.backup(tmp_path / "copy.db")
    copy = tmp_path / "copy.db"
    copy_bytes = copy.read_bytes()
    target: Store = (MemoryStore() if target_kind == "memory"
                     else await SqliteStore.open(tmp_path / "mine.db"))
    try:
        async with SqliteStore.open(copy, read_only=True) as ro:
            forked = await fork(target, source, at_state=S3, plan=FIXED, source=ro)
            assert forked.artifacts_copied >= 5  # manifest, snapshots, fact payloads
            with pytest.raises(StorageError) as err:  # the copy itself stays read-only
                await fork(ro, source, at_state=S3, plan=FIXED)
            assert err.value.info.code == "store_read_only"
        transport = AskedFactory()
        result = await resume(target, forked.run_id, FIXED, transports=transport)
        assert result.status is RunStatus.COMPLETED
        assert transport.asked == ["quote3", "quote4"]
        assert [s.run_id for s in await target.list_runs()] == [forked.run_id]
        assert (await replay_store(target, forked.run_id, FIXED)).identical
        if isinstance(target, SqliteStore):
            report = await target.verify()
            assert report.ok, str(report)
    finally:
        await target.close()
    assert copy.read_bytes() == copy_bytes
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["live.db", "copy.db"] + (["mine.db"] if target_kind == "sqlite" else []))


async def test_without_a_plan_the_fork_is_prepared_and_resume_checks_the_plan(
        store: Store) -> None:
    source = await failed_run(store)
    forked = await fork(store, source, at_state=S2)
    transport = AskedFactory()
    result = await resume(store, forked.run_id, FIXED, transports=transport)
    assert result.status is RunStatus.COMPLETED
    assert transport.asked == ["rate", "quote3", "quote4"]
    assert json.dumps(wire(await stream(store, forked.run_id)))  # wire form encodes
    assert [e.event.state_id for e in await stream(store, forked.run_id)
            if isinstance(e.event, StateEntered)] == [S1, S2, S3, S4]


async def test_a_stream_with_events_before_run_started_forks_and_names_its_origin() -> None:
    """An imported stream may hold domain events before RunStarted: they are inherited, and
    run_forked still follows RunStarted."""
    async with MemoryStore() as recorded, MemoryStore() as store:
        original = await failed_run(recorded)
        pid = await store.put(ArtifactKind.FACT_PAYLOAD, b'{"a":1}')
        envs = [EventEnvelope(original, 1, None, DomainEvent(
            "fact_recorded", {"key": "early", "payload_id": pid, "meta": {}}))]
        await _copy_run(recorded, store, original, envs)
        forked = await fork(store, original, at_state=S3, plan=FIXED)
        events = await stream(store, forked.run_id)
        assert isinstance(events[1].event, RunStarted)
        assert ForkOrigin.from_event(events[2].event) is not None
        assert await fork_origin(store, forked.run_id) == ForkOrigin(
            source_run_id=original, source_seq=forked.source_seq, state_id=S3,
            reuse_facts="before")
        transport = AskedFactory()
        result = await resume(store, forked.run_id, FIXED, transports=transport)
        assert result.status is RunStatus.COMPLETED and transport.asked == ["quote3", "quote4"]
        assert (await store.facts(forked.run_id))["early"] == pid


async def _copy_run(src: Store, dst: Store, run_id: RunId,
                    first: list[EventEnvelope]) -> None:
    """``first`` then the source run's events (shifted), with the artifacts they name."""
    for aid in await _all_artifacts(src, run_id):
        await dst.put(ArtifactKind.other("copied"), await src.get(aid))
    envs = list(first)
    for env in await stream(src, run_id):
        envs.append(EventEnvelope(run_id, len(envs) + 1, None, env.event))
    await dst.append(run_id, 0, envs)


async def _all_artifacts(store: Store, run_id: RunId) -> set[ArtifactId]:
    out: set[ArtifactId] = set()
    for env in await stream(store, run_id):
        ev = env.event
        for name in ("manifest_id", "initial_snapshot_id", "base_snapshot_id",
                     "context_snapshot_id", "final_snapshot_id"):
            if getattr(ev, name, None) is not None:
                out.add(getattr(ev, name))
        if isinstance(ev, DomainEvent) and ev.name == "fact_recorded":
            out.add(ev.payload["payload_id"])
    return out


async def test_a_run_that_crashed_inside_the_state_forks_there(store: Store) -> None:
    class Crash(BaseException):
        pass

    async def crashing(ctx: Context, io: Any, rec: EventRecorder) -> None:
        await io.call(IoCall("test.quote", {"s": 3}, "quote3"))
        raise Crash

    plan = ExecutionPlan("op", [PlanState(s.state_id, crashing) if s.state_id == S3 else s
                                for s in FIXED.states])
    with pytest.raises(Crash):
        await start(store, plan, transports=AskedFactory())
    (summary,) = await store.list_runs()
    assert summary.status == "running"
    source = summary.run_id
    with pytest.raises(RunError) as err:
        await fork(store, source, at_state=S4, plan=FIXED)
    assert err.value.info.code == "fork_state_not_reached"
    forked = await fork(store, source, at_state=S3, plan=FIXED)
    transport = AskedFactory()
    result = await resume(store, forked.run_id, FIXED, transports=transport)
    assert result.status is RunStatus.COMPLETED and transport.asked == ["quote3", "quote4"]
    assert (await replay_store(store, forked.run_id, FIXED)).identical
