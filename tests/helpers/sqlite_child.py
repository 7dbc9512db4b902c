"""Child processes for the SQLite reliability tests (run as ``python -m``-style scripts).

``append PATH RUN_ID BATCH``: append batches of BATCH events forever, printing each new head
after ``append`` returns (= acknowledged), and the id of an artifact put with it.
``race PATH RUN_ID KEYS WORKER``: print ready, wait for a line on stdin, then bind KEYS fact
keys (every worker the same keys, its own payloads), put shared artifacts and append to its
own run; print one JSON line with what it saw.
"""

from __future__ import annotations

import asyncio
import json
import sys

from mfm_store import ArtifactKind, DomainEvent, EventEnvelope, RunId
from mfm_store.sqlite import SqliteStore


async def append_forever(path: str, run: RunId, batch: int) -> None:
    async with SqliteStore.open(path) as store:
        head = await store.head_seq(run)
        while True:
            envs = [EventEnvelope(run, head + i, None, DomainEvent("tick", {"n": head + i}))
                    for i in range(1, batch + 1)]
            aid = await store.put(ArtifactKind.OUTPUT, f"artifact {head + batch}".encode())
            head = await store.append(run, head, envs)
            print(head, aid, flush=True)


async def race(path: str, run: RunId, keys: int, worker: int) -> None:
    async with SqliteStore.open(path) as store:
        print("ready", flush=True)
        sys.stdin.readline()  # the parent releases every worker at once
        own = RunId.new()
        results: dict[str, str] = {}

        async def bind(k: int) -> None:
            pid = await store.put(ArtifactKind.FACT_PAYLOAD,
                                  json.dumps({"worker": worker, "key": k}).encode())
            shared = await store.put(ArtifactKind.OUTPUT, f"shared {k}".encode())
            assert await store.get(shared) == f"shared {k}".encode()
            binding = await store.bind_fact(run, f"key-{k}", pid)
            results[f"key-{k}"] = binding.payload_id

        async def append_own(n: int) -> None:
            head = 0
            for _ in range(n):
                env = EventEnvelope(own, head + 1, None, DomainEvent("own", {"w": worker}))
                head = await store.append(own, head, [env])

        await asyncio.gather(*(bind(k) for k in range(keys)), append_own(50))
        won = 0
        for k in range(keys):
            winner = json.loads(await store.get(results[f"key-{k}"]))
            won += winner["worker"] == worker
        print(json.dumps({"worker": worker, "own_run": str(own), "results": results,
                          "won": won}), flush=True)


def main() -> None:
    mode, path, run = sys.argv[1], sys.argv[2], RunId.parse(sys.argv[3])
    if mode == "append":
        asyncio.run(append_forever(path, run, int(sys.argv[4])))
    else:
        asyncio.run(race(path, run, int(sys.argv[4]), int(sys.argv[5])))


if __name__ == "__main__":
    main()
