"""The engine's behaviours (SPEC §7), one test each, on every backend."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helpers.engine import (
    S1,
    S2,
    CountingFactory,
    Crash,
    attempts,
    domain_events,
    files_contain,
    seed_run,
    stream,
    stream_text,
)

from mfm_store import (
    ArtifactKind,
    DomainEvent,
    IoError,
    MissingFactError,
    NotFoundError,
    RunStatus,
    StateCompleted,
    StateEntered,
    StateFailed,
    Store,
    artifact_id_for_bytes,
    artifact_id_for_json,
)
from mfm_store.engine import (
    Context,
    ContextError,
    EventProfile,
    EventRecorder,
    ExecutionMode,
    ExecutionPlan,
    InvalidPlanError,
    IoMode,
    PlanState,
    RunConfig,
    RunError,
    RunManifest,
    StateFailure,
    resume,
    start,
)
from mfm_store.live_io import IoCall

MNEMONIC = ("abandon ability able about above absent absorb abstract absurd abuse access "
            "accident")
NORMAL = RunConfig(event_profile=EventProfile.NORMAL)


def one_state(handler: Any, **kw: Any) -> ExecutionPlan:
    return ExecutionPlan("op", [PlanState(S1, handler, **kw)])


async def test_secrets_in_initial_context_are_rejected_and_nothing_is_written(
        store: Store, tmp_path: Path) -> None:
    async def handler(ctx: Context, io: Any, rec: EventRecorder) -> None:
        raise AssertionError("never runs")

    with pytest.raises(ContextError) as err:
        await start(store, one_state(handler), {"mnemonic": MNEMONIC})
    assert err.value.info.code == "secrets_detected"
    assert await store.list_runs() == []
    assert not await store.exists(artifact_id_for_json(RunManifest(op_id="op").to_json()))
    assert not files_contain(tmp_path, b"mnemonic")
    assert not files_contain(tmp_path, b"abandon ability")


async def test_state_failed_messages_are_redacted_before_persisting(store: Store) -> None:
    async def handler(ctx: Context, io: Any, rec: EventRecorder) -> None:
        raise StateFailure("password leaked: hunter2", code="leak",
                           details={"private_key": "0xdeadbeef"})

    result = await start(store, one_state(handler))
    assert result.status is RunStatus.FAILED
    failed = [e.event for e in await stream(store, result.run_id)
              if isinstance(e.event, StateFailed)]
    assert len(failed) == 1
    error = failed[0].error
    assert error.state_id == S1
    assert error.info.code == "leak"
    assert error.info.message == "error details redacted"
    assert error.info.details is None
    assert result.error == error
    text = await stream_text(store, result.run_id)
    assert "hunter2" not in text and "private_key" not in text


async def test_domain_events_with_secrets_are_rejected(store: Store) -> None:
    seen: list[str] = []

    async def handler(ctx: Context, io: Any, rec: EventRecorder) -> None:
        try:
            await rec.emit(DomainEvent("note", {"password": "hunter2"}))
        except RunError as exc:
            seen.append(exc.info.code)
            raise

    result = await start(store, one_state(handler), config=NORMAL)
    assert seen == ["secrets_detected"]
    assert result.status is RunStatus.FAILED
    assert result.error is not None and result.error.info.code == "secrets_detected"
    assert await domain_events(store, result.run_id) == []
    text = await stream_text(store, result.run_id)
    assert "password" not in text and "hunter2" not in text


async def test_fact_payloads_with_secrets_are_rejected(store: Store, tmp_path: Path) -> None:
    transport = CountingFactory(answer={"password": "hunter2"})

    async def handler(ctx: Context, io: Any, rec: EventRecorder) -> None:
        await io.call(IoCall("test.get", {}, "test:fact"))

    result = await start(store, one_state(handler), config=NORMAL, transports=transport)
    assert transport.calls == 1
    assert result.status is RunStatus.FAILED
    assert result.error is not None and result.error.info.code == "secrets_detected"
    assert await domain_events(store, result.run_id, "fact_recorded") == []
    assert await store.facts(result.run_id) == {}
    assert not await store.exists(artifact_id_for_bytes(b'{"password":"hunter2"}'))
    assert "hunter2" not in await stream_text(store, result.run_id)
    assert not files_contain(tmp_path, b"hunter2")


async def test_crash_then_resume_retries_the_orphan_attempt_from_its_base(store: Store) -> None:
    crashes = [Crash()]

    async def handler(ctx: Context, io: Any, rec: EventRecorder) -> None:
        ctx["x"] = 1
        if crashes:
            raise crashes.pop()

    plan = one_state(handler)
    with pytest.raises(Crash):
        await start(store, plan)
    (run,) = await store.list_runs()
    assert run.status == "running"
    result = await resume(store, run.run_id, plan)
    assert result.status is RunStatus.COMPLETED
    assert result.final_context == {"x": 1}
    assert result.final_snapshot_id == artifact_id_for_json({"x": 1})
    assert await attempts(store, run.run_id) == [0, 1]
    entered = [e.event for e in await stream(store, run.run_id)
               if isinstance(e.event, StateEntered)]
    assert entered[0].base_snapshot_id == entered[1].base_snapshot_id == artifact_id_for_json({})


async def test_retryable_errors_are_retried(store: Store) -> None:
    failures = [StateFailure("flaky", code="flaky", retryable=True)]

    async def handler(ctx: Context, io: Any, rec: EventRecorder) -> None:
        if failures:
            raise failures.pop()
        ctx["ok"] = True

    result = await start(store, one_state(handler))
    assert result.status is RunStatus.COMPLETED
    assert result.final_context == {"ok": True}
    assert await attempts(store, result.run_id) == [0, 1]
    kinds = [type(e.event).__name__ for e in await stream(store, result.run_id)]
    assert kinds == ["RunStarted", "StateEntered", "StateFailed", "StateEntered",
                     "StateCompleted", "RunCompleted"]
    failed = next(e.event for e in await stream(store, result.run_id)
                  if isinstance(e.event, StateFailed))
    assert failed.to_json()["Kernel"]["StateFailed"]["error"] == {
        "state_id": S1,
        "info": {"code": "flaky", "category": "Unknown", "retryable": True,
                 "message": "flaky", "details": None}}


async def test_fan_out_execution_mode_is_rejected(store: Store) -> None:
    async def handler(ctx: Context, io: Any, rec: EventRecorder) -> None:
        raise AssertionError("never runs")

    config = RunConfig(execution_mode=ExecutionMode.fan_out_join(2))
    with pytest.raises(InvalidPlanError) as err:
        await start(store, one_state(handler), config=config)
    assert err.value.info.code == "unsupported_execution_mode"
    assert await store.list_runs() == []


async def test_skip_tags_skip_the_handler(store: Store) -> None:
    called: list[str] = []

    async def set_x(ctx: Context, io: Any, rec: EventRecorder) -> None:
        called.append(S1)
        ctx["x"] = 1

    async def side_effect(ctx: Context, io: Any, rec: EventRecorder) -> None:
        called.append(S2)
        ctx["x"] = 2

    plan = ExecutionPlan("op", [PlanState(S1, set_x),
                                PlanState(S2, side_effect, tags=["apply_side_effect"])],
                         edges=[(S1, S2)])
    transports = CountingFactory()
    result = await start(store, plan, config=RunConfig(skip_tags=["apply_side_effect"]),
                         transports=transports)
    assert called == [S1]
    assert transports.makes == 1
    assert result.final_context == {"x": 1}
    events = [e.event for e in await stream(store, result.run_id)]
    s1_done = next(e for e in events if isinstance(e, StateCompleted) and e.state_id == S1)
    s2_entered = next(e for e in events if isinstance(e, StateEntered) and e.state_id == S2)
    s2_done = next(e for e in events if isinstance(e, StateCompleted) and e.state_id == S2)
    assert (s2_entered.base_snapshot_id == s1_done.context_snapshot_id
            == s2_done.context_snapshot_id == result.final_snapshot_id)


async def test_crash_resume_reuses_facts(store: Store) -> None:
    transport = CountingFactory()
    crashes = [Crash()]

    async def handler(ctx: Context, io: Any, rec: EventRecorder) -> None:
        ctx["answer"] = (await io.call(IoCall("test.get", {"q": 1}, "k"))).response
        if crashes:
            raise crashes.pop()

    plan = one_state(handler)
    with pytest.raises(Crash):
        await start(store, plan, transports=transport)
    assert transport.calls == 1
    (run,) = await store.list_runs()
    result = await resume(store, run.run_id, plan, transports=transport)
    assert transport.calls == 1
    assert result.status is RunStatus.COMPLETED
    assert result.final_context == {"answer": {"n": 0}}
    assert await attempts(store, run.run_id) == [0, 1]
    facts = await domain_events(store, run.run_id, "fact_recorded")
    assert [f.payload["key"] for f in facts] == ["k"]


async def test_facts_are_single_assignment_across_retries(store: Store) -> None:
    transport = CountingFactory()
    failures = [StateFailure("flaky", code="flaky", retryable=True)]
    seen: list[Any] = []

    async def handler(ctx: Context, io: Any, rec: EventRecorder) -> None:
        seen.append((await io.call(IoCall("test.get", {}, "k"))).response)
        if failures:
            raise failures.pop()

    result = await start(store, one_state(handler), transports=transport)
    assert result.status is RunStatus.COMPLETED
    assert transport.calls == 1
    assert seen == [{"n": 0}, {"n": 0}]
    facts = await domain_events(store, result.run_id, "fact_recorded")
    assert [f.payload["key"] for f in facts] == ["k"]
    assert await store.facts(result.run_id) == {"k": artifact_id_for_json({"n": 0})}


async def test_time_and_random_are_recorded_as_facts(store: Store) -> None:
    drawn: list[Any] = []

    async def handler(ctx: Context, io: Any, rec: EventRecorder) -> None:
        drawn.extend([await io.now_millis(), await io.now_millis(), await io.random_bytes(8)])

    result = await start(store, one_state(handler))
    assert result.status is RunStatus.COMPLETED
    facts = await domain_events(store, result.run_id, "fact_recorded")
    keys = [f.payload["key"] for f in facts]
    prefix = f"|run:{result.run_id}|state:{S1}|attempt:0|ord:"
    assert keys == [f"mfm:now_millis{prefix}0", f"mfm:now_millis{prefix}1",
                    f"mfm:random_bytes{prefix}2"]
    payloads = [await store.get(f.payload["payload_id"]) for f in facts]
    assert payloads == [str(drawn[0]).encode(), str(drawn[1]).encode(), drawn[2]]
    assert len(drawn[2]) == 8


async def test_replay_mode_serves_recorded_facts_without_transport(store: Store) -> None:
    transport = CountingFactory()

    async def handler(ctx: Context, io: Any, rec: EventRecorder) -> None:
        ctx["answer"] = (await io.call(IoCall("test.get", {}, "k"))).response

    manifest = RunManifest(op_id="op", run_config=RunConfig(io_mode=IoMode.REPLAY))
    run_id = await seed_run(store, manifest, {"k": {"n": 0}})
    result = await resume(store, run_id, one_state(handler), transports=transport)
    assert result.status is RunStatus.COMPLETED
    assert result.final_context == {"answer": {"n": 0}}
    assert (transport.makes, transport.calls) == (0, 0)


async def test_replay_mode_with_a_missing_fact_fails_without_transport(store: Store) -> None:
    transport = CountingFactory()
    seen: list[str] = []

    async def handler(ctx: Context, io: Any, rec: EventRecorder) -> None:
        try:
            await io.call(IoCall("test.get", {}, "k"))
        except MissingFactError as exc:
            seen.append(exc.key)
            raise

    manifest = RunManifest(op_id="op", run_config=RunConfig(io_mode=IoMode.REPLAY))
    run_id = await seed_run(store, manifest)
    result = await resume(store, run_id, one_state(handler), transports=transport)
    assert seen == ["k"]
    assert result.status is RunStatus.FAILED
    assert result.error is not None and result.error.info.code == "missing_fact"
    assert await attempts(store, run_id) == [0]
    assert (transport.makes, transport.calls) == (0, 0)


_ = (ArtifactKind, IoError, NotFoundError)
