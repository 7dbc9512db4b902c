"""The demo's market and broker server, driven through the HTTP transport."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mfm_store._demo_server import DemoServer
from mfm_store.engine import ExecutionPlan, PlanState, replay, start
from mfm_store.events import RunStatus
from mfm_store.http import Http, HttpTransportFactory, idempotency_key
from mfm_store.sqlite import SqliteStore


async def test_demo_server_answers_through_a_recorded_run_and_replays(tmp_path: Path) -> None:
    async def quote(ctx: Any, io: Any, rec: Any) -> None:
        http = Http(io)
        q = (await http.get("/market/quote", key="quote", params={"symbol": "ACME"})).json()
        fx = (await http.get("/market/fx", key="fx", params={"pair": "USD/EUR"})).json()
        ctx["price_cents"] = round(q["price"] * 100)
        ctx["rate_ppm"] = round(fx["rate"] * 1_000_000)

    async def order(ctx: Any, io: Any, rec: Any) -> None:
        http = Http(io)
        ack = (await http.post("/broker/orders", key="order",
                               json={"qty": 5, "limit_cents": ctx["price_cents"]})).json()
        status = (await http.get(f"/broker/orders/{ack['ticket']}", key="status")).json()
        ctx["ticket"], ctx["filled"] = ack["ticket"], status["filled_qty"]

    plan = ExecutionPlan("demo", [PlanState("demo.order.quote", quote),
                                  PlanState("demo.order.submit", order)])
    db = tmp_path / "demo.db"
    with DemoServer() as server:
        async with SqliteStore.open(db) as store, \
                HttpTransportFactory(base_url=server.url) as http:
            result = await start(store, plan, {}, transports=http)
            # The same order sent again with the same key is not applied twice.
            again = await http.client().post(
                f"{server.url}/broker/orders", json={"qty": 5},
                headers={"Idempotency-Key": idempotency_key(result.run_id, "order")})
        assert again.json()["ticket"] == result.final_context["ticket"]
        assert server.effects == 1 and server.count("POST", "/broker/orders") == 2
    assert result.status is RunStatus.COMPLETED
    assert 1000 <= result.final_context["price_cents"] < 10_000
    assert result.final_context["filled"] == 5
    assert (await replay(db, result.run_id, plan)).identical
