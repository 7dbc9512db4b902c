"""The demo's workflow: a small order, four states, over real HTTP.

``demo.order.quote`` asks the market for a price and an exchange rate, ``demo.order.stamp``
takes the time and a random order id, ``demo.order.submit`` posts the order to the broker (the
side effect that must happen once; the HTTP transport sends an ``Idempotency-Key``, which the
broker honours), ``demo.order.confirm`` asks the broker for its status. The market and broker
are :class:`mfm_store._demo_server.DemoServer` on 127.0.0.1; every call goes through
:class:`~mfm_store.http.HttpTransportFactory` and :class:`~mfm_store.http.Http`, and every
answer is a keyed fact, so a replay from the facts (server stopped) reproduces every snapshot.
Prices arrive as JSON numbers with decimals and become integer cents in the context (canonical
JSON has no floats).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from .engine import Context, EventProfile, EventRecorder, ExecutionPlan, PlanState, RunConfig
from .events import DomainEvent
from .http import Http, HttpResponse, HttpTransportFactory
from .live_io import IoCall, IoProvider, LiveIoEnv, LiveIoTransport

__all__ = ["CONFIG", "INITIAL_CONTEXT", "OP_ID", "STATES", "CallLog", "LoggedHttp",
           "build_plan"]

OP_ID = "demo"
QUOTE, STAMP, SUBMIT, CONFIRM = (f"demo.order.{s}" for s in ("quote", "stamp", "submit",
                                                              "confirm"))
STATES = (QUOTE, STAMP, SUBMIT, CONFIRM)
INITIAL_CONTEXT: dict[str, Any] = {"symbol": "ACME", "qty": 10, "pair": "USD/EUR"}
CONFIG = RunConfig(event_profile=EventProfile.NORMAL)  # keep the domain event in the stream

CallLog = Callable[[str, str], None]
"""``log("METHOD /path", fact_key)``: told of every request that reaches the transport."""
CrashPoint = Callable[[str], Awaitable[None]]


class _LoggedTransport:
    def __init__(self, inner: LiveIoTransport, log: CallLog) -> None:
        self._inner = inner
        self._log = log

    async def call(self, call: IoCall) -> Any:
        request = call.request if isinstance(call.request, dict) else {}
        self._log(f"{request.get('method', '?')} {request.get('url', '?')}",
                  call.fact_key or "")
        return await self._inner.call(call)


class LoggedHttp:
    """An :class:`HttpTransportFactory` whose transports report each request to ``log``."""

    def __init__(self, http: HttpTransportFactory, log: CallLog) -> None:
        self._http = http
        self._log = log

    @property
    def namespace_group(self) -> str:
        return self._http.namespace_group

    def make(self, env: LiveIoEnv) -> _LoggedTransport:
        return _LoggedTransport(self._http.make(env), self._log)


async def _no_crash(state_id: str) -> None:
    return None


def build_plan(crash_point: CrashPoint = _no_crash,
               on_ask: Callable[[str], None] | None = None) -> ExecutionPlan:
    """The demo plan (its transport: :class:`LoggedHttp` or an ``HttpTransportFactory`` with
    ``base_url`` the demo server's URL). ``crash_point(state)`` is awaited in ``submit`` right
    after the broker's answer is recorded (the demo's child process is killed there);
    ``on_ask(key)`` is told of every keyed call a handler makes, answered by the server or by
    a recorded fact."""

    async def ask(io: IoProvider, key: str, method: str, url: str, **kw: Any) -> HttpResponse:
        if on_ask is not None:
            on_ask(key)
        return await Http(io).request(method, url, key=key, **kw)

    async def quote(ctx: Context, io: IoProvider, rec: EventRecorder) -> None:
        sym, pair = ctx["symbol"], ctx["pair"]
        q = (await ask(io, f"market:quote|{sym}", "GET", "/market/quote",
                       params={"symbol": sym})).json()
        ctx["quote"] = {"symbol": q["symbol"], "price_cents": round(q["price"] * 100),
                        "currency": q["currency"]}
        fx = (await ask(io, f"market:fx|{pair}", "GET", "/market/fx",
                        params={"pair": pair})).json()
        ctx["rate_ppm"] = round(fx["rate"] * 1_000_000)

    async def stamp(ctx: Context, io: IoProvider, rec: EventRecorder) -> None:
        ctx["placed_at_ms"] = await io.now_millis()
        ctx["order_id"] = "ord-" + (await io.random_bytes(6)).hex()

    async def submit(ctx: Context, io: IoProvider, rec: EventRecorder) -> None:
        order = {"order_id": ctx["order_id"], "symbol": ctx["symbol"], "qty": ctx["qty"],
                 "limit_cents": ctx["quote"]["price_cents"]}
        ack = (await ask(io, f"broker:submit|{ctx['order_id']}", "POST", "/broker/orders",
                         json=order)).json()
        await crash_point(SUBMIT)
        ctx["ticket"] = ack["ticket"]
        await rec.emit(DomainEvent("order_submitted", {"order_id": ctx["order_id"],
                                                       "ticket": ack["ticket"]}))

    async def confirm(ctx: Context, io: IoProvider, rec: EventRecorder) -> None:
        status = (await ask(io, f"broker:status|{ctx['ticket']}", "GET",
                            f"/broker/orders/{ctx['ticket']}")).json()
        usd = status["filled_qty"] * ctx["quote"]["price_cents"]
        ctx["status"] = status["status"]
        ctx["total_usd_cents"] = usd
        ctx["total_eur_cents"] = usd * ctx["rate_ppm"] // 1_000_000

    handlers = (quote, stamp, submit, confirm)
    states = tuple(PlanState(sid, h) for sid, h in zip(STATES, handlers, strict=True))
    # ExecutionPlan's ``converter=tuple`` leaves mypy an unsolved type variable.
    return ExecutionPlan(OP_ID, states)
