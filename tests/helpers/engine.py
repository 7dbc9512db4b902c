"""Helpers shared by the engine tests: transports, stream inspection, seeding, and a recorded
run to replay (``recorded_plan``, ``record``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mfm_store import (
    ArtifactKind,
    DomainEvent,
    EventEnvelope,
    RunId,
    RunStarted,
    RunStatus,
    StateEntered,
    Store,
    TransportError,
    canonical_json_bytes,
)
from mfm_store.engine import Context, EventRecorder, ExecutionPlan, PlanState, start
from mfm_store.engine.manifest import RunManifest, manifest_bytes
from mfm_store.live_io import IoCall, LiveIoEnv, LiveIoTransport
from mfm_store.sqlite import SqliteStore

S1 = "machine.main.s1"
S2 = "machine.main.s2"
S3 = "machine.main.s3"


class CountingFactory:
    """A transport factory that counts ``make`` and ``call`` and answers ``{"n": calls}``."""

    def __init__(self, group: str = "test", answer: Any = None, fail_first: int = 0) -> None:
        self.namespace_group = group
        self.makes = 0
        self.calls = 0
        self.failures_left = fail_first
        self._answer = answer

    def make(self, env: LiveIoEnv) -> LiveIoTransport:
        self.makes += 1
        return _CountingTransport(self)


class _CountingTransport:
    def __init__(self, factory: CountingFactory) -> None:
        self._factory = factory

    async def call(self, call: IoCall) -> Any:
        if self._factory.failures_left:
            self._factory.failures_left -= 1
            raise TransportError("upstream unavailable", retryable=True)
        n = self._factory.calls
        self._factory.calls += 1
        return {"n": n} if self._factory._answer is None else self._factory._answer


class Crash(BaseException):
    """Stands for the process dying in the middle of a state."""


async def stream(store: Store, run_id: RunId) -> list[EventEnvelope]:
    return await store.read_range(run_id)


async def attempts(store: Store, run_id: RunId, state_id: str = S1) -> list[int]:
    return [e.event.attempt for e in await stream(store, run_id)
            if isinstance(e.event, StateEntered) and e.event.state_id == state_id]


async def domain_events(store: Store, run_id: RunId,
                        name: str | None = None) -> list[DomainEvent]:
    return [e.event for e in await stream(store, run_id) if isinstance(e.event, DomainEvent)
            and (name is None or e.event.name == name)]


async def stream_text(store: Store, run_id: RunId) -> str:
    return json.dumps([e.to_json() for e in await stream(store, run_id)])


def files_contain(root: Path, needle: bytes) -> bool:
    """True if any file under ``root`` (a database, its WAL) holds ``needle``."""
    return any(needle in p.read_bytes() for p in root.rglob("*") if p.is_file())


async def seed_run(store: Store, manifest: RunManifest,
                   facts: dict[str, Any] | None = None) -> RunId:
    """A run whose stream holds only RunStarted (+ fact_recorded events), as if imported."""
    run_id = RunId.new()
    manifest_id = await store.put(ArtifactKind.MANIFEST, manifest_bytes(manifest))
    initial = await store.put(ArtifactKind.CONTEXT_SNAPSHOT, b"{}")
    envs = [EventEnvelope(run_id, 1, None, RunStarted(manifest.op_id, manifest_id, initial))]
    for key, value in (facts or {}).items():
        pid = await store.put(ArtifactKind.FACT_PAYLOAD, canonical_json_bytes(value))
        envs.append(EventEnvelope(run_id, len(envs) + 1, None, DomainEvent(
            "fact_recorded", {"key": key, "payload_id": pid, "meta": {}})))
    await store.append(run_id, 0, envs)
    return run_id


def recorded_plan(*, s2_bonus: int = 0, s2_extra_fact: bool = False) -> ExecutionPlan:
    """s1 reads the time and fetches a price (a fact); recorded with a transport that fails
    once, it completes at attempt 1. s2 draws random bytes and derives a value; s3 copies it."""

    async def fetch(ctx: Context, io: Any, rec: EventRecorder) -> None:
        ctx["at"] = await io.now_millis()
        ctx["price"] = (await io.call(IoCall("test.price", {"sym": "X"}, "price:X"))).response

    async def derive(ctx: Context, io: Any, rec: EventRecorder) -> None:
        salt = await io.random_bytes(4)
        ctx["derived"] = ctx["price"]["n"] + salt[0] + s2_bonus
        if s2_extra_fact:
            await io.call(IoCall("test.price", {"sym": "Y"}, "price:Y"))

    async def copy(ctx: Context, io: Any, rec: EventRecorder) -> None:
        ctx["copy"] = ctx["derived"]

    return ExecutionPlan("op", [PlanState(S1, fetch), PlanState(S2, derive),
                                PlanState(S3, copy)])


async def record(path: Path) -> RunId:
    async with SqliteStore.open(path) as store:
        result = await start(store, recorded_plan(), {"start": 1},
                             transports=CountingFactory(fail_first=1))
        assert result.status is RunStatus.COMPLETED
        assert await attempts(store, result.run_id, S1) == [0, 1]
        return result.run_id
