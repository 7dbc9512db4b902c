"""Real processes against one SQLite file: SIGKILL at random points, several writers at once."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
from pathlib import Path

from mfm_store import RunId
from mfm_store.sqlite import SqliteStore

CHILD = str(Path(__file__).parent / "helpers" / "sqlite_child.py")
ROOT = str(Path(__file__).parent.parent)


def spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, CHILD, *args], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT)


async def test_sigkill_at_random_points_loses_no_acknowledged_write(tmp_path: Path) -> None:
    path = tmp_path / "crash.db"
    run = RunId.new()
    batch = 3
    rng = random.Random(20261126)
    acknowledged_head = 0
    acknowledged_artifacts: list[str] = []
    for _round in range(12):
        child = spawn("append", str(path), str(run), str(batch))
        assert child.stdout is not None
        for _ in range(rng.randint(1, 40)):  # kill after a random number of acknowledgements
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
        if child.stdout:
            child.stdout.close()
        if child.stderr:
            child.stderr.close()
        if child.stdin:
            child.stdin.close()
        async with SqliteStore.open(path) as store:
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


async def test_several_processes_bind_the_same_keys(tmp_path: Path) -> None:
    path = tmp_path / "race.db"
    run = RunId.new()
    keys, workers = 60, 4
    async with SqliteStore.open(path):
        pass  # create the file once so that the workers race on data, not on creation
    children = [spawn("race", str(path), str(run), str(keys), str(w)) for w in range(workers)]
    for child in children:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
    for child in children:
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.flush()
    outputs = []
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        assert "locked" not in err
        outputs.append(json.loads(out.strip().splitlines()[-1]))
    first = outputs[0]["results"]
    assert len(first) == keys
    for out in outputs[1:]:
        assert out["results"] == first, "processes disagree on a fact's winner"
    assert sum(out["won"] for out in outputs) == keys
    async with SqliteStore.open(path) as store:
        assert await store.facts(run) == first
        events = await store.read_range(run)
        assert [e.seq for e in events] == list(range(1, keys + 1))
        for out in outputs:
            own = RunId.parse(out["own_run"])
            assert await store.head_seq(own) == 50
        report = await store.verify()
        assert report.ok, str(report)
        assert report.artifacts == keys * workers + keys
