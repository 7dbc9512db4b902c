"""Four OS processes racing LiveIo on the same fact keys of one SQLite file (SPEC §5.1, §6)."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import queue
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

from mfm_store import (
    DomainEvent,
    FactIndex,
    IoCall,
    LiveIo,
    RunId,
    StoreFactRecorder,
    artifact_id_for_bytes,
    canonical_json_bytes,
)
from mfm_store.sqlite import SqliteStore

WORKERS = 4
STATE = "machine.main.s1"
# A safety net so a broken run fails instead of hanging; never used to order events.
DEADLINE_S = 120


class _BarrierTransport:
    """Answers with its process's identity once every process has asked (a real race)."""

    def __init__(self, worker: int, barrier: Barrier) -> None:
        self.worker = worker
        self.barrier = barrier
        self.calls = 0

    async def call(self, call: IoCall) -> Any:
        self.calls += 1
        await asyncio.to_thread(self.barrier.wait, DEADLINE_S)
        return {"worker": self.worker, "pid": os.getpid()}


async def _race(path: str, run_text: str, worker: int, barrier: Barrier) -> dict[str, Any]:
    run = RunId.parse(run_text)
    async with await SqliteStore.open(path) as store:
        transport = _BarrierTransport(worker, barrier)
        io = LiveIo(run, STATE, 0, store, await FactIndex.from_store(store, run),
                    StoreFactRecorder(store, run), transport,
                    clock=lambda: 1_000 + worker, entropy=lambda n: bytes([worker]) * n)
        result = await io.call(IoCall("http.get", {"url": "https://x"}, fact_key="quote"))
        # Same run, state and attempt everywhere, so the derived keys collide too.
        await asyncio.to_thread(barrier.wait, DEADLINE_S)
        millis = await io.now_millis()
        noise = await io.random_bytes(8)
    return {"worker": worker, "transport_calls": transport.calls, "result": result.to_json(),
            "millis": millis, "noise": noise.hex()}


def _worker(path: str, run_text: str, worker: int, barrier: Barrier,
            results: multiprocessing.Queue[Any]) -> None:
    try:
        results.put(asyncio.run(_race(path, run_text, worker, barrier)))
    except BaseException as exc:
        barrier.abort()
        results.put({"worker": worker, "error": repr(exc)})
        raise


async def test_four_processes_race_on_one_key_and_all_get_the_winner(tmp_path: Path) -> None:
    path = tmp_path / "race.db"
    run = RunId.new()
    async with await SqliteStore.open(path):
        pass  # the file exists before the race; the race is about facts, not creation

    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(WORKERS)
    results: multiprocessing.Queue[Any] = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(str(path), str(run), i, barrier, results))
             for i in range(WORKERS)]
    for p in procs:
        p.start()
    try:
        answers = [await asyncio.to_thread(results.get, True, DEADLINE_S) for _ in procs]
    except queue.Empty:
        raise AssertionError(f"workers did not answer; exit codes "
                             f"{[p.exitcode for p in procs]}") from None
    finally:
        for p in procs:
            await asyncio.to_thread(p.join, DEADLINE_S)
    results.close()
    results.join_thread()

    assert [a.get("error") for a in answers] == [None] * WORKERS, answers
    assert [p.exitcode for p in procs] == [0] * WORKERS
    assert all(a["transport_calls"] == 1 for a in answers)
    # Every process got the same answer, and it is one process's answer, not a mix.
    assert all(a["result"] == answers[0]["result"] for a in answers), answers
    assert len({a["millis"] for a in answers}) == 1
    assert len({a["noise"] for a in answers}) == 1
    winner = answers[0]["result"]
    assert winner["response"]["worker"] in range(WORKERS)
    millis, noise = answers[0]["millis"], bytes.fromhex(answers[0]["noise"])
    assert millis in {1_000 + i for i in range(WORKERS)}
    assert noise in {bytes([i]) * 8 for i in range(WORKERS)}

    now_key = f"mfm:now_millis|run:{run}|state:{STATE}|attempt:0|ord:0"
    random_key = f"mfm:random_bytes|run:{run}|state:{STATE}|attempt:0|ord:1"
    async with await SqliteStore.open(path) as store:
        assert await store.facts(run) == {
            "quote": winner["recorded_payload_id"],
            now_key: artifact_id_for_bytes(canonical_json_bytes(millis)),
            random_key: artifact_id_for_bytes(noise),
        }
        assert await store.get(winner["recorded_payload_id"]) == canonical_json_bytes(
            winner["response"])
        events = await store.read_range(run)
        assert await store.head_seq(run) == 3
        assert sorted(e.event.payload["key"] for e in events
                      if isinstance(e.event, DomainEvent)) == sorted(["quote", now_key, random_key])
        # Payload and binding are one write: a loser's payload is never stored.
        for a in answers:
            own_noise = artifact_id_for_bytes(bytes([a["worker"]]) * 8)
            assert await store.exists(own_noise) == (bytes([a["worker"]]) * 8 == noise)
