"""A run to fork (shared by the fork tests): a four-state plan whose s3 has a bug
(``BUGGY``) and its fix (``FIXED``), a transport that notes the keys it is asked, and
``failed_run`` that records the buggy run to fork."""

from __future__ import annotations

from typing import Any

from helpers.engine import S1, S2, S3
from mfm_store import RunId, RunStatus, Store
from mfm_store.engine import Context, EventRecorder, ExecutionPlan, PlanState, start
from mfm_store.live_io import IoCall, LiveIoEnv, LiveIoTransport

S4 = "machine.main.s4"


class AskedFactory:
    """A transport factory that records the fact key of every call it answers."""

    namespace_group = "test"

    def __init__(self) -> None:
        self.asked: list[str | None] = []

    def make(self, env: LiveIoEnv) -> LiveIoTransport:
        return _Asked(self)


class _Asked:
    def __init__(self, factory: AskedFactory) -> None:
        self._factory = factory

    async def call(self, call: IoCall) -> Any:
        self._factory.asked.append(call.fact_key)
        return {"n": len(self._factory.asked), "key": call.fact_key}


def make_plan(*, s3_fixed: bool, op: str = "op", extra_before_s3: bool = False
              ) -> ExecutionPlan:
    """Four states: s1 reads the time and a price, s2 draws random bytes and a rate, s3 asks a
    quote then (buggy) indexes a missing key, s4 asks a last quote and the time."""

    async def s1(ctx: Context, io: Any, rec: EventRecorder) -> None:
        ctx["at"] = await io.now_millis()
        ctx["price"] = (await io.call(IoCall("test.price", {}, "price"))).response["n"]

    async def s2(ctx: Context, io: Any, rec: EventRecorder) -> None:
        salt = await io.random_bytes(4)
        ctx["rate"] = (await io.call(IoCall("test.rate", {}, "rate"))).response["n"] + salt[0]

    async def s3(ctx: Context, io: Any, rec: EventRecorder) -> None:
        quote = (await io.call(IoCall("test.quote", {"s": 3}, "quote3"))).response
        ctx["q3"] = quote["n"] if s3_fixed else quote["missing"]  # the bug: KeyError

    async def s4(ctx: Context, io: Any, rec: EventRecorder) -> None:
        ctx["q4"] = (await io.call(IoCall("test.quote", {"s": 4}, "quote4"))).response["n"]
        ctx["done_at"] = await io.now_millis()

    async def extra(ctx: Context, io: Any, rec: EventRecorder) -> None:
        ctx["extra"] = True

    states = [PlanState(S1, s1), PlanState(S2, s2)]
    if extra_before_s3:
        states.append(PlanState("machine.main.extra", extra))
    states += [PlanState(S3, s3), PlanState(S4, s4)]
    return ExecutionPlan(op, states)


BUGGY = make_plan(s3_fixed=False)
FIXED = make_plan(s3_fixed=True)


async def failed_run(store: Store) -> RunId:
    """A run that fails at s3 (of 4) because of the handler bug."""
    transport = AskedFactory()
    result = await start(store, BUGGY, {"limit": 7}, transports=transport)
    assert result.status is RunStatus.FAILED
    assert result.error is not None and result.error.state_id == S3
    assert result.error.info.code == "state_handler_exception"
    assert transport.asked == ["price", "rate", "quote3"]
    return result.run_id
