"""Child processes for the follow tests.

``write PATH RUNS EVENTS``: print ready, wait for a line on stdin, then append EVENTS events
(batches of 1-3) to each of RUNS runs, interleaved, and complete each run; print "done".
``follow PATH CURSOR_FILE STOP_AFTER``: follow every run from the cursor in CURSOR_FILE (if it
exists), print each event as ``run_id seq`` and rewrite CURSOR_FILE after each one; print
ready first; exit after STOP_AFTER events (or -1: never).
"""

from __future__ import annotations

import asyncio
import os
import sys

from mfm_store import DomainEvent, EventEnvelope, RunCompleted, RunId, RunStatus
from mfm_store.follow import FollowCursor
from mfm_store.sqlite import SqliteStore


async def write(path: str, runs: int, events: int) -> None:
    async with SqliteStore.open(path) as store:
        ids = [RunId.new() for _ in range(runs)]
        heads = dict.fromkeys(ids, 0)
        print("ready", flush=True)
        sys.stdin.readline()
        step = 0
        while any(h < events for h in heads.values()):
            for rid in ids:
                head = heads[rid]
                n = min(1 + step % 3, events - head)
                if n <= 0:
                    continue
                envs = [EventEnvelope(rid, head + i, None, DomainEvent("tick", {"i": head + i}))
                        for i in range(1, n + 1)]
                heads[rid] = await store.append(rid, head, envs)
                step += 1
        for rid in ids:
            await store.append(rid, heads[rid], [EventEnvelope(
                rid, heads[rid] + 1, None, RunCompleted(RunStatus.COMPLETED))])
        print("done", flush=True)


async def follow(path: str, cursor_file: str, stop_after: int) -> None:
    after = None
    if os.path.exists(cursor_file):
        with open(cursor_file) as f:
            after = FollowCursor.parse(f.read())
    async with SqliteStore.open(path) as store:
        seen = 0
        async with store.follow(after=after) as follower:
            print("ready", flush=True)
            async for env in follower:
                # the cursor is saved before the event is reported: at most once is then
                # exactly once when the report and the save happen together, as here
                tmp = cursor_file + ".tmp"
                with open(tmp, "w") as f:
                    f.write(follower.cursor.to_text())
                os.replace(tmp, cursor_file)
                print(env.run_id, env.seq, type(env.event).__name__, flush=True)
                seen += 1
                if seen == stop_after:
                    return


if __name__ == "__main__":
    command, path, *rest = sys.argv[1:]
    if command == "write":
        asyncio.run(write(path, int(rest[0]), int(rest[1])))
    else:
        asyncio.run(follow(path, rest[0], int(rest[1])))
