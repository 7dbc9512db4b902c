"""Runs for the push/pull tests, and a child process that syncs two stores.

``seed`` / ``extend`` write runs the way the engine does: artifacts first (manifest, context
snapshots, outputs), then events naming them, facts through ``record_fact``.

As a program: ``python sync_child.py SRC DST [--batch N] [--concurrency N] [--tag T]`` opens
both stores (``open_store``), prints ``ready``, syncs SRC into DST printing ``copied <n>``
after every batch appended (flushed, so a parent can kill it at a known moment), then
``done <report json>``. With ``--seed R:E`` it first seeds SRC with R runs of about E events
(tag T), and prints their ids as ``runs <id> <id> ...``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence

from mfm_store import (
    ArtifactKind,
    DomainEvent,
    Event,
    EventEnvelope,
    RunCompleted,
    RunId,
    RunStarted,
    RunStatus,
    StateCompleted,
    StateEntered,
    Store,
    canonical_json_bytes,
    open_store,
)

MANIFEST = canonical_json_bytes({"op": "sync_test", "version": 1})


async def _snapshot(store: Store, value: object) -> str:
    return await store.put(ArtifactKind.CONTEXT_SNAPSHOT, canonical_json_bytes(value))


async def _steps(store: Store, run: RunId, head: int, n: int, tag: str,
                 ) -> tuple[int, list[EventEnvelope]]:
    """About ``n`` events after ``head``: states with snapshots, outputs and facts."""
    envs: list[EventEnvelope] = []
    seq = head
    while len(envs) < n:
        i = seq
        step = f"m.main.s{i % 7}"
        base = await _snapshot(store, {"run": str(run), "at": i, "tag": tag})
        out = await store.put(ArtifactKind.OUTPUT, f"{tag}:{run}:{i}".encode())
        events: list[Event] = [
            StateEntered(step, 0, base),
            DomainEvent("note", {"i": i, "tag": tag, "ratio": i / 8, "text": "héllo ✓"}, out),
            StateCompleted(step, await _snapshot(store, {"run": str(run), "done": i})),
        ]
        for ev in events:
            seq += 1
            envs.append(EventEnvelope(run, seq, 1_700_000_000_000 + seq, ev))
    return seq, envs


async def seed_run(store: Store, events: int, *, tag: str = "t", finish: bool = True,
                   run: RunId | None = None) -> RunId:
    """A run of about ``events`` events (at least 8) with 2 facts."""
    run = run or RunId.new()
    manifest = await store.put(ArtifactKind.MANIFEST, MANIFEST)
    initial = await _snapshot(store, {"start": tag})
    head = await store.append(run, 0, [EventEnvelope(run, 1, None,
                                                     RunStarted("sync_test", manifest,
                                                                initial))])
    head = (await store.record_fact(run, f"price:{tag}", canonical_json_bytes(
        {"n": len(tag), "run": str(run)}))).seq
    head = await extend(store, run, max(events - 4, 3), tag=tag, head=head)
    head = (await store.record_fact(run, f"time:{tag}", canonical_json_bytes(
        {"ms": 1_700_000_000_000 + head}))).seq
    if finish:
        final = await _snapshot(store, {"final": str(run)})
        await store.append(run, head, [EventEnvelope(run, head + 1, None, RunCompleted(
            RunStatus.COMPLETED, final))])
    return run


async def extend(store: Store, run: RunId, n: int, *, tag: str = "x",
                 head: int | None = None) -> int:
    """Append about ``n`` events (new artifacts, one new fact) to ``run``; the new head."""
    head = await store.head_seq(run) if head is None else head
    head, envs = await _steps(store, run, head, n, tag)
    new = await store.append(run, envs[0].seq - 1, envs)
    return (await store.record_fact(run, f"more:{tag}:{new}",
                                    canonical_json_bytes({"at": new}))).seq


async def seed(store: Store, runs: int, events: int, *, tag: str = "t") -> list[RunId]:
    return [await seed_run(store, events, tag=f"{tag}{i}", finish=i % 3 != 0)
            for i in range(runs)]


async def _main(argv: Sequence[str]) -> int:
    from mfm_store import sync as sync_mod

    parser = argparse.ArgumentParser()
    parser.add_argument("src")
    parser.add_argument("dst")
    parser.add_argument("--batch", type=int, default=0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seed", default="")
    parser.add_argument("--tag", default="t")
    args = parser.parse_args(argv)
    if args.batch:
        sync_mod._EVENT_BATCH = args.batch
    async with open_store(args.src) as src, open_store(args.dst) as dst:
        if args.seed:
            n_runs, n_events = (int(x) for x in args.seed.split(":"))
            ids = await seed(src, n_runs, n_events, tag=args.tag)
            print("runs", *ids, flush=True)
        print("ready", flush=True)

        def progress(phase: str, n: int, total: int | None) -> None:
            if n:
                print("copied", n, flush=True)

        report = await sync_mod.sync(src, dst, progress=progress,
                                     concurrency=args.concurrency)
        print("done", json.dumps(report.to_json()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(_main(sys.argv[1:])))
