"""A run killed with SIGKILL inside a state, resumed by another process, facts re-used."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from mfm_store import DomainEvent, RunStatus, StateEntered
from mfm_store.sqlite import SqliteStore

FETCH = "machine.main.fetch"

CHILD = r'''
import asyncio, json, os, sys
from pathlib import Path

from mfm_store.engine import ExecutionPlan, PlanState, resume, start
from mfm_store.live_io import IoCall
from mfm_store.sqlite import SqliteStore

db, mode, calls = sys.argv[1], sys.argv[2], Path(sys.argv[3])


class Transport:
    async def call(self, call):
        # One line per real call, durable before the answer is used.
        with calls.open("a") as f:
            f.write(call.fact_key + "\n")
            f.flush()
            os.fsync(f.fileno())
        return {"q": call.request["q"], "pid": os.getpid()}


class Factory:
    namespace_group = "svc"

    def make(self, env):
        return Transport()


async def fetch(ctx, io, rec):
    ctx["a"] = (await io.call(IoCall("svc.get", {"q": "a"}, "fact:a"))).response
    ctx["b"] = (await io.call(IoCall("svc.get", {"q": "b"}, "fact:b"))).response
    if mode == "start":
        print("inside", flush=True)
        await asyncio.Event().wait()  # the parent kills us here


async def finish(ctx, io, rec):
    ctx["done"] = True


plan = ExecutionPlan("op", [PlanState("machine.main.fetch", fetch),
                            PlanState("machine.main.finish", finish)])


async def main():
    async with SqliteStore.open(db) as store:
        if mode == "start":
            await start(store, plan, {"n": 1}, transports=Factory())
            raise SystemExit("start returned: the kill did not happen")
        (run,) = await store.list_runs()
        result = await resume(store, run.run_id, plan, transports=Factory())
        print(json.dumps({"run_id": str(result.run_id), "status": result.status.value,
                          "final": result.final_context}))


asyncio.run(main())
'''


async def test_sigkill_inside_a_state_then_resume_in_another_process_reuses_facts(
        tmp_path: Path) -> None:
    script = tmp_path / "child.py"
    script.write_text(CHILD, encoding="utf-8")
    db, calls = tmp_path / "run.db", tmp_path / "calls.txt"
    args = [sys.executable, str(script), str(db)]

    child = subprocess.Popen([*args, "start", str(calls)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == "inside\n"
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=60) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if child.stdout is not None:
            child.stdout.close()
    assert calls.read_text().splitlines() == ["fact:a", "fact:b"]

    done = subprocess.run([*args, "resume", str(calls)], capture_output=True, text=True,
                          timeout=120, check=True)
    out = json.loads(done.stdout)
    assert out["status"] == RunStatus.COMPLETED.value
    # Both answers are the killed process's facts, not fresh calls by the resuming one.
    assert out["final"]["a"]["pid"] == out["final"]["b"]["pid"] == child.pid
    assert out["final"]["done"] is True and out["final"]["n"] == 1
    assert calls.read_text().splitlines() == ["fact:a", "fact:b"]

    async with SqliteStore.open(db, read_only=True) as store:
        (run,) = await store.list_runs()
        assert str(run.run_id) == out["run_id"] and run.status == "completed"
        events = [e.event for e in await store.read_range(run.run_id)]
        entered = [e for e in events if isinstance(e, StateEntered) and e.state_id == FETCH]
        assert [e.attempt for e in entered] == [0, 1]
        assert entered[0].base_snapshot_id == entered[1].base_snapshot_id
        keys = [e.payload["key"] for e in events
                if isinstance(e, DomainEvent) and e.name == "fact_recorded"]
        assert keys == ["fact:a", "fact:b"]
        report = await store.verify()
        assert report.ok, str(report)
