"""Child processes for the PostgreSQL reliability tests (run as scripts).

``append DSN SCHEMA RUN_ID BATCH``: append batches of BATCH events forever, printing each new
head after ``append`` returns (= acknowledged), and the id of an artifact put with it.
``race DSN SCHEMA WORKER TASKS KEYS RUNS``: print ready, wait for a line on stdin, then run
TASKS tasks that each bind KEYS fact keys on RUNS shared runs (every worker the same keys, its
own payloads), put shared artifacts and append one event to each shared run (retrying on
``ConcurrencyError``); print one JSON line with what it saw.
"""

from __future__ import annotations

import asyncio
import json
import sys

from mfm_store import ArtifactKind, ConcurrencyError, DomainEvent, EventEnvelope, RunId
from mfm_store.postgres import PostgresStore


async def append_forever(dsn: str, schema: str, run: RunId, batch: int) -> None:
    async with PostgresStore.open(dsn, schema=schema, pool_size=2) as store:
        head = await store.head_seq(run)
        while True:
            envs = [EventEnvelope(run, head + i, None, DomainEvent("tick", {"n": head + i}))
                    for i in range(1, batch + 1)]
            aid = await store.put(ArtifactKind.OUTPUT, f"artifact {head + batch}".encode())
            head = await store.append(run, head, envs)
            print(head, aid, flush=True)


async def race(dsn: str, schema: str, worker: int, tasks: int, keys: int,
               runs: list[RunId]) -> None:
    async with PostgresStore.open(dsn, schema=schema, pool_size=8) as store:
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)

        async def task(t: int) -> dict[str, object]:
            bound: dict[str, str] = {}
            won: list[str] = []
            appended: list[str] = []
            for run in runs:
                for k in range(keys):
                    data = json.dumps({"worker": worker, "task": t, "k": k}).encode()
                    if (t + k) % 2:
                        binding = await store.record_fact(run, f"key{k}", data)
                    else:
                        pid = await store.put(ArtifactKind.FACT_PAYLOAD, data)
                        binding = await store.bind_fact(run, f"key{k}", pid)
                    bound[f"{run}/key{k}"] = binding.payload_id
                    if binding.inserted:
                        won.append(f"{run}/key{k}")
                await store.put(ArtifactKind.OUTPUT, f"shared {run}".encode())
                while True:
                    head = await store.head_seq(run)
                    env = EventEnvelope(run, head + 1, None,
                                        DomainEvent("mark", {"w": worker, "t": t}))
                    try:
                        appended.append(f"{run}:{await store.append(run, head, [env])}")
                        break
                    except ConcurrencyError:
                        continue
            return {"bound": bound, "won": won, "appended": appended}

        results = await asyncio.gather(*(task(t) for t in range(tasks)))
        print(json.dumps({"worker": worker, "tasks": results}), flush=True)


def main() -> None:
    what, dsn, schema, *rest = sys.argv[1:]
    if what == "append":
        asyncio.run(append_forever(dsn, schema, RunId.parse(rest[0]), int(rest[1])))
    elif what == "race":
        worker, tasks, keys = int(rest[0]), int(rest[1]), int(rest[2])
        runs = [RunId.parse(r) for r in rest[3].split(",")]
        asyncio.run(race(dsn, schema, worker, tasks, keys, runs))
    else:
        raise SystemExit(f"unknown command {what}")


if __name__ == "__main__":
    main()
