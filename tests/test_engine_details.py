"""Engine details beyond the SPEC §7 list: manifests, backoff, profiles, resume rules, writer."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from helpers.engine import (
    S1,
    S2,
    S3,
    CountingFactory,
    Crash,
    attempts,
    domain_events,
    seed_run,
    stream,
    stream_text,
)

from conftest import load_vector
from mfm_store import (
    ArtifactKind,
    ConcurrencyError,
    DomainEvent,
    EventEnvelope,
    NotFoundError,
    RunCompleted,
    RunId,
    RunStarted,
    RunStatus,
    StateEntered,
    StateError,
    StateFailed,
    Store,
    artifact_id_for_json,
    canonical_json_bytes,
)
from mfm_store.engine import (
    Context,
    ContextError,
    Duration,
    EventProfile,
    EventRecorder,
    ExecutionMode,
    ExecutionPlan,
    ExponentialBackoff,
    FixedBackoff,
    InvalidPlanError,
    IoMode,
    PlanState,
    RetryPolicy,
    RunConfig,
    RunManifest,
    StateFailure,
    resume,
    start,
)
from mfm_store.engine.context import read_snapshot
from mfm_store.engine.manifest import load_manifest, manifest_bytes
from mfm_store.engine.writer import RunWriter
from mfm_store.errors import ErrorCategory, ErrorInfo
from mfm_store.live_io import IoCall


async def noop(ctx: Context, io: Any, rec: EventRecorder) -> None:
    return None


def one_state(handler: Any = noop) -> ExecutionPlan:
    return ExecutionPlan("op", [PlanState(S1, handler)])


# manifests


def test_default_manifest_is_the_reference_test_manifest() -> None:
    (vector,) = [v for v in load_vector("canonical_json.json")["canonical"]
                 if v["name"] == "reference test manifest"]
    manifest = RunManifest(op_id="op", op_version="0")
    assert manifest.to_json() == vector["value"]
    assert manifest_bytes(manifest).decode() == vector["canonical"]
    assert artifact_id_for_json(manifest.to_json()) == vector["artifact_id"]
    assert RunManifest.from_json(vector["value"]) == manifest


def test_manifest_round_trips_every_config_variant() -> None:
    config = RunConfig(
        io_mode=IoMode.REPLAY,
        retry_policy=RetryPolicy(5, ExponentialBackoff(Duration(0, 5_000_000), Duration(2, 1))),
        event_profile=EventProfile.custom("audit"),
        execution_mode=ExecutionMode.fan_out_join(4),
        replay_missing_fact_retryable=True,
        skip_tags=["apply_side_effect"],
        nix_flake_allowlist=["path:."],
    )
    manifest = RunManifest(op_id="swap", op_version="1.2", input_params={"amount": 10},
                           run_config=config)
    obj = manifest.to_json()
    assert obj["run_config"]["retry_policy"]["backoff"] == {"Exponential": {
        "base_delay": {"secs": 0, "nanos": 5_000_000}, "max_delay": {"secs": 2, "nanos": 1}}}
    assert obj["run_config"]["event_profile"] == {"Custom": "audit"}
    assert obj["run_config"]["execution_mode"] == {"FanOutJoin": {"max_concurrency": 4}}
    assert RunManifest.from_json(obj) == manifest
    del obj["run_config"]["nix_flake_allowlist"]
    assert RunManifest.from_json(obj).run_config.nix_flake_allowlist == ("github:willyrgf/mfm",)


async def test_manifest_with_secrets_is_refused_before_any_write(store: Store) -> None:
    manifest = RunManifest(op_id="op", input_params={"api_key": "k"})
    with pytest.raises(InvalidPlanError) as err:
        await start(store, one_state(), manifest=manifest)
    assert err.value.info.code == "secrets_detected"
    assert await store.list_runs() == []


async def test_manifest_and_plan_must_agree(store: Store) -> None:
    with pytest.raises(InvalidPlanError) as err:
        await start(store, one_state(), manifest=RunManifest(op_id="other"))
    assert err.value.info.code == "manifest_op_id_mismatch"
    with pytest.raises(InvalidPlanError) as err:
        await start(store, one_state(), manifest=RunManifest(op_id="op"),
                    config=RunConfig(skip_tags=["x"]))
    assert err.value.info.code == "run_config_mismatch"
    assert await store.list_runs() == []


async def test_stored_manifest_is_checked_on_load(store: Store) -> None:
    manifest = RunManifest(op_id="op")
    mid = await store.put(ArtifactKind.MANIFEST, manifest_bytes(manifest))
    assert await load_manifest(store, mid) == manifest
    other = await store.put(ArtifactKind.OUTPUT, b'{"not": "a manifest"}')
    with pytest.raises(InvalidPlanError) as err:
        await load_manifest(store, other)
    assert err.value.info.code == "manifest_deserialize_failed"
    fan_out = RunManifest(op_id="op",
                          run_config=RunConfig(execution_mode=ExecutionMode.fan_out_join(2)))
    fid = await store.put(ArtifactKind.MANIFEST, manifest_bytes(fan_out))
    with pytest.raises(InvalidPlanError) as err:
        await load_manifest(store, fid)
    assert err.value.info.code == "unsupported_execution_mode"


# plans


async def test_invalid_plans_are_refused_before_any_write(store: Store) -> None:
    cases = [
        ExecutionPlan("op", []),
        ExecutionPlan("op", [PlanState(S1, noop), PlanState(S1, noop)]),
        ExecutionPlan("op", [PlanState(S1, noop)], edges=[(S1, S2)]),
        ExecutionPlan("op", [PlanState(S1, noop), PlanState(S2, noop)],
                      edges=[(S1, S2), (S2, S1)]),
    ]
    for plan in cases:
        with pytest.raises(InvalidPlanError) as err:
            await start(store, plan)
        assert err.value.info.code == "invalid_plan"
    assert await store.list_runs() == []


def test_plan_order_follows_edges_then_declaration() -> None:
    plan = ExecutionPlan("op", [PlanState(S1, noop), PlanState(S2, noop), PlanState(S3, noop)],
                         edges=[(S3, S1)])
    assert [s.state_id for s in plan.ordered()] == [S2, S3, S1]


# retry and backoff


def test_backoff_delays() -> None:
    assert FixedBackoff(Duration(1, 5)).delay_for(7) == Duration(1, 5)
    exp = ExponentialBackoff(Duration.from_millis(100), Duration(1, 0))
    assert [exp.delay_for(a).total_nanos // 1_000_000 for a in range(6)] == [
        100, 200, 400, 800, 1000, 1000]
    huge = ExponentialBackoff(Duration(1, 0), Duration(2**40, 0))
    assert huge.delay_for(10_000) == Duration(2**31, 0)


async def test_exponential_backoff_waits_between_retries_until_attempts_run_out(
        store: Store) -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    async def handler(ctx: Context, io: Any, rec: EventRecorder) -> None:
        raise StateFailure("busy", code="busy", retryable=True)

    policy = RetryPolicy(3, ExponentialBackoff(Duration.from_millis(10), Duration.from_millis(15)))
    result = await start(store, one_state(handler), config=RunConfig(retry_policy=policy),
                         sleep=sleep)
    assert result.status is RunStatus.FAILED
    assert result.error is not None and result.error.info.code == "busy"
    assert await attempts(store, result.run_id) == [0, 1, 2]
    assert waits == [0.01, 0.015]
    assert result.final_snapshot_id == artifact_id_for_json({})


async def test_non_retryable_and_unexpected_errors_are_not_retried(store: Store) -> None:
    async def handler(ctx: Context, io: Any, rec: EventRecorder) -> None:
        raise KeyError("missing")

    result = await start(store, one_state(handler))
    assert result.status is RunStatus.FAILED
    assert result.error is not None
    assert result.error.info.code == "state_handler_exception"
    assert result.error.info.message == "KeyError: 'missing'"
    assert await attempts(store, result.run_id) == [0]


# context


async def test_a_context_that_cannot_be_stored_fails_the_state(store: Store) -> None:
    async def floaty(ctx: Context, io: Any, rec: EventRecorder) -> None:
        ctx["price"] = 1.5

    async def leaky(ctx: Context, io: Any, rec: EventRecorder) -> None:
        ctx["note"] = "Bearer zyxwvu-token"

    for handler, code in [(floaty, "context_snapshot_not_canonical"),
                          (leaky, "secrets_detected")]:
        result = await start(store, one_state(handler))
        assert result.status is RunStatus.FAILED
        assert result.error is not None and result.error.info.code == code
        assert "zyxwvu" not in await stream_text(store, result.run_id)


async def test_states_see_the_context_of_the_previous_state(store: Store) -> None:
    async def first(ctx: Context, io: Any, rec: EventRecorder) -> None:
        ctx["x"] = ctx["x"] + 1
        del ctx["drop"]

    async def second(ctx: Context, io: Any, rec: EventRecorder) -> None:
        ctx["y"] = {"from_x": ctx["x"], "has_drop": "drop" in ctx}

    plan = ExecutionPlan("op", [PlanState(S1, first), PlanState(S2, second)])
    result = await start(store, plan, {"x": 1, "drop": True})
    assert result.final_context == {"x": 2, "y": {"from_x": 2, "has_drop": False}}
    assert await read_snapshot(store, result.final_snapshot_id or "") == result.final_context


# event profiles


async def test_event_profiles(store: Store) -> None:
    async def handler(ctx: Context, io: Any, rec: EventRecorder) -> None:
        await rec.emit(DomainEvent("op_boundary", {"op_path": "main.s1", "phase": "started"}))
        await rec.emit_many([DomainEvent("metric", {"ms": 1.5}), DomainEvent("metric", [1])])
        await io.call(IoCall("test.get", {}, "k"))

    minimal = await start(store, one_state(handler), transports=CountingFactory())
    assert [e.name for e in await domain_events(store, minimal.run_id)] == ["fact_recorded"]
    normal = await start(store, one_state(handler), config=RunConfig(
        event_profile=EventProfile.NORMAL), transports=CountingFactory())
    events = await domain_events(store, normal.run_id)
    assert [e.name for e in events] == ["op_boundary", "metric", "metric", "fact_recorded"]
    assert events[1].payload == {"ms": 1.5}


async def test_emit_many_is_all_or_nothing(store: Store) -> None:
    async def handler(ctx: Context, io: Any, rec: EventRecorder) -> None:
        await rec.emit_many([DomainEvent("ok", 1), DomainEvent("bad", {"token": "bearer x"})])

    result = await start(store, one_state(handler), config=RunConfig(
        event_profile=EventProfile.VERBOSE))
    assert result.error is not None and result.error.info.code == "secrets_detected"
    assert await domain_events(store, result.run_id) == []


# resume


async def test_a_finished_run_resumes_as_a_no_op(store: Store) -> None:
    calls: list[int] = []

    async def handler(ctx: Context, io: Any, rec: EventRecorder) -> None:
        calls.append(1)
        ctx["v"] = 1

    plan = one_state(handler)
    first = await start(store, plan)
    head = await store.head_seq(first.run_id)
    again = await resume(store, first.run_id, plan)
    assert again == first
    assert calls == [1]
    assert await store.head_seq(first.run_id) == head


async def test_resume_retries_a_failed_state_after_a_crash_during_backoff(store: Store) -> None:
    async def crash(seconds: float) -> None:
        raise Crash()

    failures = [StateFailure("flaky", code="flaky", retryable=True)]

    async def handler(ctx: Context, io: Any, rec: EventRecorder) -> None:
        if failures:
            raise failures.pop()
        ctx["ok"] = 1

    config = RunConfig(retry_policy=RetryPolicy(2, FixedBackoff(Duration(60, 0))))
    plan = one_state(handler)
    with pytest.raises(Crash):
        await start(store, plan, config=config, sleep=crash)
    (run,) = await store.list_runs()
    result = await resume(store, run.run_id, plan)
    assert result.status is RunStatus.COMPLETED and result.final_context == {"ok": 1}
    assert await attempts(store, run.run_id) == [0, 1]


async def test_resume_records_failure_of_a_state_with_no_attempts_left(store: Store) -> None:
    run_id = await seed_run(store, RunManifest(op_id="op"))
    base = artifact_id_for_json({})
    error = StateError(S1, ErrorInfo("fatal", ErrorCategory.UNKNOWN, False, "fatal", None))
    await store.append(run_id, 1, [EventEnvelope(run_id, 2, None, StateEntered(S1, 0, base)),
                                   EventEnvelope(run_id, 3, None, StateFailed(S1, error))])

    async def handler(ctx: Context, io: Any, rec: EventRecorder) -> None:
        raise AssertionError("not retried: the error was not retryable")

    result = await resume(store, run_id, one_state(handler))
    assert result.status is RunStatus.FAILED and result.error == error
    last = (await stream(store, run_id))[-1]
    assert last.seq == 4 and last.event == RunCompleted(RunStatus.FAILED, base)


async def test_resume_refuses_what_does_not_fit(store: Store) -> None:
    with pytest.raises(NotFoundError) as nf:
        await resume(store, RunId.new(), one_state())
    assert nf.value.info.code == "run_not_found"
    run_id = await seed_run(store, RunManifest(op_id="op"))
    with pytest.raises(InvalidPlanError) as err:
        await resume(store, run_id, ExecutionPlan("other", [PlanState(S1, noop)]))
    assert err.value.info.code == "plan_op_id_mismatch"  # checked first, as mfm-machine does

    lost = RunId.new()
    missing = artifact_id_for_json({"never": "stored"})
    with pytest.raises(NotFoundError) as nf:  # no run can point at a missing artifact
        await store.append(lost, 0, [EventEnvelope(lost, 1, None, RunStarted("op", missing,
                                                                            missing))])
    assert nf.value.info.code == "artifact_not_found"
    with pytest.raises(NotFoundError):
        await resume(store, lost, one_state())

    bad = await seed_run(store, RunManifest(op_id="op"))
    await store.append(bad, 1, [EventEnvelope(bad, 2, None, RunCompleted(RunStatus.FAILED))])
    await store.append(bad, 2, [EventEnvelope(bad, 3, None, StateFailed(S1, StateError(
        S1, ErrorInfo("x", ErrorCategory.UNKNOWN, False, "x"))))])
    with pytest.raises(InvalidPlanError) as err:
        await resume(store, bad, one_state())
    assert err.value.info.code == "terminal_without_entered"


async def test_resume_refuses_a_recorded_state_missing_from_the_plan(store: Store) -> None:
    plan = ExecutionPlan("op", [PlanState(S1, noop), PlanState(S2, noop)])
    crashes = [Crash()]

    async def crash(ctx: Context, io: Any, rec: EventRecorder) -> None:
        if crashes:
            raise crashes.pop()

    with pytest.raises(Crash):
        await start(store, ExecutionPlan("op", [PlanState(S1, noop), PlanState(S3, crash)]))
    (run,) = await store.list_runs()
    with pytest.raises(InvalidPlanError) as err:
        await resume(store, run.run_id, plan)
    assert err.value.info.code == "recovery_state_not_in_plan"


async def test_start_refuses_an_existing_run_id(store: Store) -> None:
    first = await start(store, one_state())
    with pytest.raises(ConcurrencyError) as err:
        await start(store, one_state(), run_id=first.run_id)
    assert err.value.info.code == "run_already_exists"


async def test_a_stale_writer_gets_concurrency_error_and_the_stream_stays_whole(
        store: Store) -> None:
    transport = CountingFactory()
    inside, release = asyncio.Event(), asyncio.Event()
    first_attempt = [True]

    async def handler(ctx: Context, io: Any, rec: EventRecorder) -> None:
        ctx["v"] = (await io.call(IoCall("test.get", {}, "k"))).response
        if first_attempt:
            first_attempt.pop()
            inside.set()
            await release.wait()
            ctx["late"] = (await io.call(IoCall("test.get", {}, "late"))).response

    plan = one_state(handler)
    stale = asyncio.create_task(start(store, plan, transports=transport))
    await inside.wait()
    (run,) = await store.list_runs()
    result = await resume(store, run.run_id, plan, transports=transport)
    assert result.status is RunStatus.COMPLETED and result.final_context == {"v": {"n": 0}}
    head = await store.head_seq(run.run_id)
    release.set()
    with pytest.raises(ConcurrencyError):
        await stale
    events = await stream(store, run.run_id)
    assert len(events) == head and isinstance(events[-1].event, RunCompleted)
    assert await store.facts(run.run_id) == {"k": artifact_id_for_json({"n": 0})}
    assert await attempts(store, run.run_id) == [0, 1]


async def test_writer_learns_the_head_from_fact_bindings(store: Store) -> None:
    run_id = RunId.new()
    writer = RunWriter(store, run_id, 0)
    await writer.append([DomainEvent("a", 1)])
    pid = await store.put(ArtifactKind.FACT_PAYLOAD, canonical_json_bytes(1))
    binding = await writer.bind_fact("k", pid)
    assert binding.inserted and binding.seq == 2 and writer.head == 2
    assert await writer.append([DomainEvent("b", 2)]) == 3
    await store.append(run_id, 3, [EventEnvelope(run_id, 4, None, DomainEvent("foreign", 0))])
    with pytest.raises(ConcurrencyError):
        await writer.append([DomainEvent("c", 3)])
    with pytest.raises(ConcurrencyError):
        await writer.bind_fact("k2", pid)
    assert await store.head_seq(run_id) == 4
    assert await store.facts(run_id) == {"k": pid}


async def test_start_with_an_unknown_initial_context_value_type_is_refused(
        store: Store) -> None:
    with pytest.raises(ContextError) as err:
        await start(store, one_state(), {"when": object()})
    assert err.value.info.code == "context_snapshot_not_canonical"
    assert await store.list_runs() == []
