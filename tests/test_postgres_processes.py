"""Real processes and a real server: racing writers, SIGKILLed clients, a server restart."""

from __future__ import annotations

import asyncio
import json
import random
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import pg_server

from conftest import pg_dsn
from mfm_store import (
    ArtifactKind,
    ConcurrencyError,
    DomainEvent,
    EventEnvelope,
    RunId,
    StorageError,
)
from mfm_store.postgres import PostgresStore

CHILD = str(Path(__file__).parent / "helpers" / "pg_child.py")
ROOT = str(Path(__file__).parent.parent)


def spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, CHILD, *args], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT)


def reap(child: subprocess.Popen[str]) -> None:
    child.wait()
    for stream in (child.stdout, child.stderr, child.stdin):
        if stream is not None:
            stream.close()


def new_schema() -> str:
    return f"t_{uuid.uuid4().hex[:16]}"


async def test_four_processes_race_for_keys_runs_and_artifacts() -> None:
    dsn, schema = pg_dsn(), new_schema()
    runs = [RunId.new() for _ in range(3)]
    workers, tasks, keys = 4, 6, 5
    async with PostgresStore.open(dsn, schema=schema):
        pass  # create the schema once, so the race is about the data
    children = [spawn("race", dsn, schema, str(w), str(tasks), str(keys),
                      ",".join(map(str, runs))) for w in range(workers)]
    try:
        for child in children:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "ready", (
                child.stderr.read() if child.stderr else "")
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        reports = []
        for child in children:
            assert child.stdout is not None
            line = child.stdout.readline()
            assert line, child.stderr.read() if child.stderr else "child exited"
            reports.append(json.loads(line))
    finally:
        for child in children:
            reap(child)
    seen: dict[str, set[str]] = {}
    winners: dict[str, int] = {}
    appended: list[str] = []
    for report in reports:
        for task in report["tasks"]:
            for name, pid in task["bound"].items():
                seen.setdefault(name, set()).add(pid)
            for name in task["won"]:
                winners[name] = winners.get(name, 0) + 1
            appended += task["appended"]
    assert len(seen) == len(runs) * keys
    assert all(len(pids) == 1 for pids in seen.values()), "two answers for one fact"
    assert winners == {name: 1 for name in seen}, "not exactly one winner per key"
    async with PostgresStore.open(dsn, schema=schema) as store:
        for run in runs:
            events = await store.read_range(run)
            assert [e.seq for e in events] == list(range(1, len(events) + 1))
            facts = await store.facts(run)
            assert {f"{run}/{k}": {v} for k, v in facts.items()} == {
                n: p for n, p in seen.items() if n.startswith(str(run))}
            marks = [e for e in events if isinstance(e.event, DomainEvent)
                     and e.event.name == "mark"]
            assert len(marks) == workers * tasks
        assert len(appended) == len(set(appended)) == workers * tasks * len(runs)
        assert await store.exists(
            await store.put(ArtifactKind.OUTPUT, f"shared {runs[0]}".encode()))
        report = await store.verify()
        assert report.ok, str(report)


async def test_sigkill_of_a_client_at_random_moments_loses_no_acknowledged_write() -> None:
    dsn, schema = pg_dsn(), new_schema()
    run = RunId.new()
    batch = 3
    rng = random.Random(20261129)
    acknowledged_head = 0
    acknowledged_artifacts: list[str] = []
    rounds = 12
    for _round in range(rounds):
        child = spawn("append", dsn, schema, str(run), str(batch))
        assert child.stdout is not None
        for _ in range(rng.randint(1, 30)):  # kill after a random number of acknowledgements
            line = child.stdout.readline()
            assert line, child.stderr.read() if child.stderr else "child exited"
            head, aid = line.split()
            acknowledged_head = int(head)
            acknowledged_artifacts.append(aid)
        child.send_signal(signal.SIGKILL)
        child.wait()
        for line in child.stdout.read().splitlines():  # printed before the kill, unread
            head, aid = line.split()
            acknowledged_head = int(head)
            acknowledged_artifacts.append(aid)
        reap(child)
        async with PostgresStore.open(dsn, schema=schema) as store:
            head = await store.head_seq(run)
            # the child may have committed one more batch it did not get to print
            assert head in (acknowledged_head, acknowledged_head + batch)
            assert head % batch == 0, "an append is half there"
            events = await store.read_range(run)
            assert [e.seq for e in events] == list(range(1, head + 1))
            for aid in acknowledged_artifacts:
                assert await store.exists(aid)
            report = await store.verify()
            assert report.ok, str(report)
        acknowledged_head = head


@pytest.fixture
def own_server() -> Iterator[pg_server.PgServer]:
    """A server of this test's own (it gets restarted), stopped at the end."""
    try:
        server = pg_server.PgServer.start()
    except pg_server.PgUnavailable as exc:
        pg_dsn()  # fails under MFM_STORE_REQUIRE_PG=1, else skips with the same reason
        pytest.skip(str(exc))
    try:
        yield server
    finally:
        server.stop()


async def test_server_restart_during_writes(own_server: pg_server.PgServer) -> None:
    """``pg_ctl restart -m immediate`` while 8 tasks append: every caller gets an answer or
    a coded retryable error (no hang), nothing acknowledged is lost, the pool recovers."""
    schema = new_schema()
    runs = [RunId.new() for _ in range(8)]
    acked: dict[RunId, int] = dict.fromkeys(runs, 0)
    codes: list[str] = []
    restarted = asyncio.Event()
    after_restart: dict[RunId, int] = dict.fromkeys(runs, 0)

    async with PostgresStore.open(own_server.dsn, schema=schema, pool_size=8,
                                  timeout=5.0) as store:

        async def writer(run: RunId) -> None:
            head = 0
            while after_restart[run] < 5:
                env = EventEnvelope(run, head + 1, None, DomainEvent("tick", {"n": head + 1}))
                try:
                    head = await store.append(run, head, [env])
                except ConcurrencyError:
                    # a write with an unknown outcome was applied after all: check it is ours
                    head = await store.head_seq(run)
                    (got,) = await store.read_range(run, head, head)
                    assert got.event == DomainEvent("tick", {"n": head})
                    continue
                except StorageError as exc:
                    assert exc.info.code in ("store_unavailable", "commit_unknown"), exc
                    assert exc.info.retryable
                    codes.append(exc.info.code)
                    await asyncio.sleep(0.05)  # back off while the server recovers
                    continue
                acked[run] = head
                if restarted.is_set():
                    after_restart[run] += 1

        async def restart() -> None:
            while min(acked.values()) < 5:
                await asyncio.sleep(0.01)
            await asyncio.to_thread(own_server.restart_immediate)
            restarted.set()

        await asyncio.wait_for(asyncio.gather(restart(), *(writer(r) for r in runs)), 120)
        assert codes, "the restart went unnoticed: no write was in flight"
        for run in runs:
            events = await store.read_range(run)
            assert [e.seq for e in events] == list(range(1, len(events) + 1))
            assert len(events) >= acked[run]
        report = await store.verify()
        assert report.ok, str(report)
