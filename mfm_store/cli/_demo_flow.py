"""The demo's workflow: a small order, four states, a local deterministic transport.

``demo.order.quote`` asks the market for a price and an exchange rate, ``demo.order.stamp``
takes the time and a random order id, ``demo.order.submit`` sends the order to the broker (the
side effect that must happen once), ``demo.order.confirm`` asks the broker for its status. Every
answer is a keyed fact; the transport answers from the request alone (no network), so a replay
from the facts reproduces every snapshot. Amounts are integers (canonical JSON has no floats).
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

from ..engine import Context, EventProfile, EventRecorder, ExecutionPlan, PlanState, RunConfig
from ..events import DomainEvent
from ..live_io import IoCall, IoProvider, LiveIoEnv, LiveIoTransportFactory

__all__ = ["CONFIG", "INITIAL_CONTEXT", "OP_ID", "STATES", "CallLog", "build_plan",
           "transports"]

OP_ID = "demo"
QUOTE, STAMP, SUBMIT, CONFIRM = (f"demo.order.{s}" for s in ("quote", "stamp", "submit",
                                                              "confirm"))
STATES = (QUOTE, STAMP, SUBMIT, CONFIRM)
INITIAL_CONTEXT: dict[str, Any] = {"symbol": "ACME", "qty": 10, "pair": "USD/EUR"}
CONFIG = RunConfig(event_profile=EventProfile.NORMAL)  # keep the domain event in the stream

CallLog = Callable[[str, str], None]
"""``log(namespace, fact_key)``: told of every call that reaches the transport."""
CrashPoint = Callable[[str], Awaitable[None]]


def _digest(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:4], "big")


def answer(namespace: str, request: dict[str, Any]) -> dict[str, Any]:
    """What the pretend market and broker say: a pure function of the request."""
    if namespace == "market.quote":
        return {"symbol": request["symbol"], "price_cents": 1000 + _digest(request) % 9000,
                "currency": "USD"}
    if namespace == "market.fx":
        return {"pair": request["pair"], "rate_ppm": 850_000 + _digest(request) % 100_000}
    if namespace == "broker.submit":
        return {"accepted": True, "ticket": f"T-{_digest(request) % 10**8:08d}"}
    if namespace == "broker.status":
        return {"ticket": request["ticket"], "status": "filled", "filled_qty": request["qty"]}
    raise ValueError(f"unknown namespace: {namespace}")


class _Transport:
    def __init__(self, log: CallLog) -> None:
        self._log = log

    async def call(self, call: IoCall) -> Any:
        self._log(call.namespace, call.fact_key or "")
        return answer(call.namespace, call.request)


class _Factory:
    def __init__(self, group: str, log: CallLog) -> None:
        self._group = group
        self._log = log

    @property
    def namespace_group(self) -> str:
        return self._group

    def make(self, env: LiveIoEnv) -> _Transport:
        return _Transport(self._log)


def transports(log: CallLog) -> list[LiveIoTransportFactory]:
    """The market and broker transports (routed by namespace), reporting calls to ``log``."""
    return [_Factory("market", log), _Factory("broker", log)]


async def _no_crash(state_id: str) -> None:
    return None


def build_plan(crash_point: CrashPoint = _no_crash,
               on_ask: Callable[[str], None] | None = None) -> ExecutionPlan:
    """The demo plan. ``crash_point(state)`` is awaited in ``submit`` right after the broker's
    answer is recorded (the demo's child process is killed there); ``on_ask(key)`` is told of
    every keyed call a handler makes, answered by the transport or by a recorded fact."""

    async def ask(io: IoProvider, namespace: str, request: dict[str, Any],
                  key: str) -> Any:
        if on_ask is not None:
            on_ask(key)
        return (await io.call(IoCall(namespace, request, key))).response

    async def quote(ctx: Context, io: IoProvider, rec: EventRecorder) -> None:
        ctx["quote"] = await ask(io, "market.quote", {"symbol": ctx["symbol"]},
                                 f"market:quote|{ctx['symbol']}")
        fx = await ask(io, "market.fx", {"pair": ctx["pair"]}, f"market:fx|{ctx['pair']}")
        ctx["rate_ppm"] = fx["rate_ppm"]

    async def stamp(ctx: Context, io: IoProvider, rec: EventRecorder) -> None:
        ctx["placed_at_ms"] = await io.now_millis()
        ctx["order_id"] = "ord-" + (await io.random_bytes(6)).hex()

    async def submit(ctx: Context, io: IoProvider, rec: EventRecorder) -> None:
        order = {"order_id": ctx["order_id"], "symbol": ctx["symbol"], "qty": ctx["qty"],
                 "limit_cents": ctx["quote"]["price_cents"]}
        ack = await ask(io, "broker.submit", order, f"broker:submit|{ctx['order_id']}")
        await crash_point(SUBMIT)
        ctx["ticket"] = ack["ticket"]
        await rec.emit(DomainEvent("order_submitted", {"order_id": ctx["order_id"],
                                                       "ticket": ack["ticket"]}))

    async def confirm(ctx: Context, io: IoProvider, rec: EventRecorder) -> None:
        status = await ask(io, "broker.status", {"ticket": ctx["ticket"], "qty": ctx["qty"]},
                           f"broker:status|{ctx['ticket']}")
        usd = status["filled_qty"] * ctx["quote"]["price_cents"]
        ctx["status"] = status["status"]
        ctx["total_usd_cents"] = usd
        ctx["total_eur_cents"] = usd * ctx["rate_ppm"] // 1_000_000

    handlers = (quote, stamp, submit, confirm)
    states = tuple(PlanState(sid, h) for sid, h in zip(STATES, handlers, strict=True))
    # ExecutionPlan's ``converter=tuple`` leaves mypy an unsolved type variable.
    return ExecutionPlan(OP_ID, states)
