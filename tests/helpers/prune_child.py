"""``prune PATH``: print "start", prune every finished run (one transaction), print "done"."""

from __future__ import annotations

import asyncio
import sys

from mfm_store.sqlite import SqliteStore


async def main(path: str) -> None:
    async with SqliteStore.open(path) as store:
        print("start", flush=True)
        report = await store.prune(keep_last=0, artifact_min_age_seconds=0)
        print("done", len(report.runs), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[2]))
