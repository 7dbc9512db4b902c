"""HTTP effects across a SIGKILL: a POST whose answer was recorded is not sent again; one whose
answer was lost is sent again with the same Idempotency-Key (the server applies it once); a
backup copy replays offline, identical, with the server stopped and httpx unavailable."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from helpers.http_server import LocalServer

from mfm_store.http import idempotency_key
from mfm_store.ids import RunId
from mfm_store.sqlite import SqliteStore

CHILD = r'''
import asyncio, hashlib, json, sys

db, mode, base, hold = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
if mode == "replay":
    sys.modules["httpx"] = None  # replay must not need it

from mfm_store.engine import ExecutionPlan, PlanState, replay, resume, start
from mfm_store.http import Http, HttpTransportFactory
from mfm_store.sqlite import SqliteStore


async def quote(ctx, io, rec):
    http = Http(io)
    resp = await http.get(base + "/json", key="quote")
    ctx["price_cents"] = round(resp.json()["price"] * 100)
    blob = await http.get(base + "/binary", key="blob", params={"n": 300000})
    ctx["blob_sha256"] = hashlib.sha256(blob.content).hexdigest()


async def order(ctx, io, rec):
    resp = await Http(io).post(base + "/orders", key="order", params={"hold": hold},
                               json={"qty": 3, "limit_cents": ctx["price_cents"]})
    ctx["ticket"] = resp.json()["ticket"]
    if mode == "start":
        print("recorded", flush=True)
        await asyncio.Event().wait()  # the parent kills us here


async def done(ctx, io, rec):
    ctx["done"] = True


plan = ExecutionPlan("shop", [PlanState("shop.main.quote", quote),
                              PlanState("shop.main.order", order),
                              PlanState("shop.main.done", done)])


async def main():
    if mode == "replay":
        run_id = sys.argv[5]
        report = await replay(db, run_id, plan)
        print(json.dumps({"identical": report.identical, "text": str(report)}))
        return
    async with SqliteStore.open(db) as store, HttpTransportFactory() as http:
        if mode == "start":
            print("run", flush=True)
            await start(store, plan, {}, transports=http)
            raise SystemExit("start returned: the kill did not happen")
        (run,) = await store.list_runs()
        result = await resume(store, run.run_id, plan, transports=http)
        print(json.dumps({"run_id": str(result.run_id), "status": result.status.value,
                          "final": result.final_context}))


asyncio.run(main())
'''


def _env() -> dict[str, str]:
    # The children import this source tree and the tests' helpers.
    tests = Path(__file__).parent
    return {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(tests.parent), str(tests), *filter(None, [os.environ.get("PYTHONPATH")])])}


def _child(script: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, str(script), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env())


def _finish(proc: subprocess.Popen[str]) -> Any:
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def _kill(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL


async def _read_line(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    return await asyncio.to_thread(proc.stdout.readline)


async def _run_id(db: Path) -> RunId:
    async with SqliteStore.open(db) as store:
        (run,) = await store.list_runs()
        return run.run_id


async def _backup_and_replay(db: Path, tmp_path: Path, script: Path, server: LocalServer,
                             run_id: RunId, hold: str) -> None:
    copy = tmp_path / "copy.db"
    async with SqliteStore.open(db) as store:
        await store.backup(copy)
    server.stop()
    report = _finish(_child(script, str(copy), "replay", server.url, hold, str(run_id)))
    assert report["identical"], report["text"]


async def test_a_recorded_post_is_not_sent_again_after_sigkill_and_replays_offline(
        tmp_path: Path) -> None:
    script, db = tmp_path / "child.py", tmp_path / "run.db"
    script.write_text(CHILD, encoding="utf-8")
    server = LocalServer().start()
    try:
        proc = _child(script, str(db), "start", server.url, "0")
        assert await _read_line(proc) == "run\n"
        assert await _read_line(proc) == "recorded\n"
        _kill(proc)
        result = _finish(_child(script, str(db), "resume", server.url, "0"))
        assert result["status"] == "Completed"
        assert result["final"]["ticket"] == "T-0001" and result["final"]["done"] is True
        assert server.count("/orders", "POST") == 1 and server.effects == 1
        assert server.count("/json") == 1 and server.count("/binary") == 1
    finally:
        server.release.set()
    await _backup_and_replay(db, tmp_path, script, server, RunId.parse(result["run_id"]), "0")


async def test_a_lost_post_answer_is_resent_with_the_same_idempotency_key_applied_once(
        tmp_path: Path) -> None:
    script, db = tmp_path / "child.py", tmp_path / "run.db"
    script.write_text(CHILD, encoding="utf-8")
    server = LocalServer().start()
    try:
        proc = _child(script, str(db), "start", server.url, "1")
        assert await _read_line(proc) == "run\n"
        # The server has applied the order and holds its answer: the child dies waiting.
        assert await asyncio.to_thread(server.applied.wait, 60)
        _kill(proc)
        server.release.set()
        run_id = await _run_id(db)
        async with SqliteStore.open(db, read_only=True) as store:
            assert "order" not in await store.facts(run_id)
        result = _finish(_child(script, str(db), "resume", server.url, "1"))
        assert result["status"] == "Completed" and result["final"]["ticket"] == "T-0001"
        posts = [r for r in server.requests if r["path"] == "/orders"]
        assert len(posts) == 2 and server.effects == 1
        assert {p["headers"]["idempotency-key"] for p in posts} \
            == {idempotency_key(run_id, "order")}
    finally:
        server.release.set()
    await _backup_and_replay(db, tmp_path, script, server, run_id, "1")
