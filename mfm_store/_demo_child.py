"""The demo's first process: starts the run live and waits, inside ``submit``, to be killed.

``python -m mfm_store._demo_child DB RUN_ID URL`` runs against the demo server at ``URL``
and reports on stdout, one JSON object a line: ``{"call": "METHOD /path", "key": fact_key}``
for every HTTP request, and
``{"crash_point": state_id}`` once the broker's answer is durable. The parent then kills it with
SIGKILL. ``{"finished": ...}`` would mean it was not killed.
"""

from __future__ import annotations

import asyncio
import json
import sys

from ._demo_flow import CONFIG, INITIAL_CONTEXT, LoggedHttp, build_plan
from .engine import start
from .http import HttpTransportFactory
from .ids import RunId
from .sqlite import SqliteStore


def _say(**message: object) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def _wait_to_be_killed(state_id: str) -> None:
    _say(crash_point=state_id)
    await asyncio.Event().wait()


async def _main(db: str, run_id: str, url: str) -> None:
    plan = build_plan(crash_point=_wait_to_be_killed)
    async with SqliteStore.open(db) as store, HttpTransportFactory(base_url=url) as http:
        result = await start(store, plan, INITIAL_CONTEXT, config=CONFIG,
                             run_id=RunId.parse(run_id),
                             transports=LoggedHttp(http, lambda c, key: _say(call=c, key=key)))
    _say(finished=result.status.value)


if __name__ == "__main__":
    asyncio.run(_main(sys.argv[1], sys.argv[2], sys.argv[3]))
