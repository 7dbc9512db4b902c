"""``mfm-store tail``: a real process printing events as another writer commits them."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from mfm_store import DomainEvent, EventEnvelope, RunCompleted, RunId, RunStatus
from mfm_store.sqlite import SqliteStore

ROOT = str(Path(__file__).parent.parent)


def tail(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "mfm_store._tail_command", "tail", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)


def ticks(run: RunId, start: int, n: int) -> list[EventEnvelope]:
    return [EventEnvelope(run, s, None, DomainEvent("tick", {"i": s}))
            for s in range(start, start + n)]


async def test_tail_of_a_run_prints_its_events_as_they_land_and_ctrl_c_exits_0(
        tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    run = RunId.new()
    async with SqliteStore.open(path) as store:
        await store.append(run, 0, ticks(run, 1, 2))
        child = tail("--db", str(path), str(run)[:8], "--json")
        assert child.stdout is not None
        first = [json.loads(child.stdout.readline()) for _ in range(2)]
        assert [e["seq"] for e in first] == [1, 2]
        await store.append(run, 2, ticks(run, 3, 1))
        assert json.loads(child.stdout.readline())["seq"] == 3
        await store.append(run, 3, [EventEnvelope(run, 4, None,
                                                  RunCompleted(RunStatus.COMPLETED))])
        last = json.loads(child.stdout.readline())
        assert last["seq"] == 4 and "RunCompleted" in json.dumps(last)
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=30)
    assert child.returncode == 0, err
    assert out == "" and err == ""


async def test_tail_of_every_run_prints_new_events_with_their_run(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    old, new = RunId.new(), RunId.new()
    async with SqliteStore.open(path) as store:
        await store.append(old, 0, ticks(old, 1, 1))
        child = tail("--db", str(path), "--from-start")
        assert child.stdout is not None
        assert child.stdout.readline().startswith(f"{old}       1  · tick")
        await store.append(new, 0, ticks(new, 1, 1))
        assert child.stdout.readline().startswith(f"{new}       1  · tick")
        child.send_signal(signal.SIGTERM)
        _out, err = child.communicate(timeout=30)
    assert child.returncode == 0, err


def test_tail_refuses_a_missing_file_and_memory(tmp_path: Path) -> None:
    child = tail("--db", str(tmp_path / "none.db"))
    _out, err = child.communicate(timeout=30)
    assert child.returncode == 3 and "[store_not_found]" in err
    child = tail("--db", "memory:")
    _out, err = child.communicate(timeout=30)
    assert child.returncode == 2
