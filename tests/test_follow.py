"""store.follow: committed events as they land, in order, resumable from a cursor; ends when
closed. Every backend in process; the SQLite file across processes."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from mfm_store import DomainEvent, EventEnvelope, RunCompleted, RunId, RunStatus, Store
from mfm_store.errors import StorageError
from mfm_store.follow import FollowCursor, Follower
from mfm_store.sqlite import SqliteStore

CHILD = str(Path(__file__).parent / "helpers" / "follow_child.py")
ROOT = str(Path(__file__).parent.parent)
BOUND = 10.0  # seconds: a bound on waiting, never a synchronisation


def ticks(run: RunId, start: int, n: int) -> list[EventEnvelope]:
    return [EventEnvelope(run, s, None, DomainEvent("tick", {"i": s}))
            for s in range(start, start + n)]


def follow(store: Store, *args: object, **kwargs: object) -> Follower:
    f: Follower = store.follow(*args, **kwargs)  # type: ignore[attr-defined]
    return f


async def take(follower: Follower, n: int) -> list[EventEnvelope]:
    out: list[EventEnvelope] = []

    async def run() -> None:
        async for env in follower:
            out.append(env)
            if len(out) == n:
                return

    await asyncio.wait_for(run(), BOUND)
    return out


async def test_a_follower_of_a_run_sees_every_event_then_run_completed(store: Store) -> None:
    run = RunId.new()
    await store.append(run, 0, ticks(run, 1, 3))
    async with follow(store, run) as follower:
        got = asyncio.create_task(take(follower, 10))
        head = 3
        for n in (1, 2, 3):
            head = await store.append(run, head, ticks(run, head + 1, n))
        await store.append(run, head, [EventEnvelope(run, head + 1, None,
                                                     RunCompleted(RunStatus.COMPLETED))])
        events = await got
    assert [e.seq for e in events] == list(range(1, 11))
    assert events[-1].event == RunCompleted(RunStatus.COMPLETED)
    assert follower.cursor == FollowCursor(str(run), 10)


async def test_every_run_in_commit_order_and_resumed_from_a_cursor(store: Store) -> None:
    a, b = RunId.new(), RunId.new()
    await store.append(a, 0, ticks(a, 1, 2))
    await store.append(b, 0, ticks(b, 1, 1))
    await store.append(a, 2, ticks(a, 3, 1))
    first = follow(store)
    seen = await take(first, 3)
    await first.aclose()
    saved = first.cursor.to_text()
    await store.append(b, 1, ticks(b, 2, 2))
    async with follow(store, after=FollowCursor.parse(saved)) as second:
        rest = await take(second, 3)
    got = [(e.run_id, e.seq) for e in seen + rest]
    if first.cursor.seqs is None:  # a global position: commit order
        assert got == [(a, 1), (a, 2), (b, 1), (a, 3), (b, 2), (b, 3)]
    else:  # PostgreSQL: each run in seq order, runs interleaved as the polls find them
        assert sorted(got) == sorted([(a, 1), (a, 2), (a, 3), (b, 1), (b, 2), (b, 3)])
        assert [s for r, s in got if r == a] == [1, 2, 3]
        assert [s for r, s in got if r == b] == [1, 2, 3]


async def test_after_end_delivers_only_what_commits_later(store: Store) -> None:
    run = RunId.new()
    await store.append(run, 0, ticks(run, 1, 4))
    async with follow(store, after="end") as every, follow(store, run, after="end") as one:
        await store.append(run, 4, ticks(run, 5, 1))
        assert [e.seq for e in await take(every, 1)] == [5]
        assert [e.seq for e in await take(one, 1)] == [5]
    async with follow(store, run, after=2) as from_seq:
        assert [e.seq for e in await take(from_seq, 3)] == [3, 4, 5]


async def test_aclose_ends_a_waiting_iteration_promptly(store: Store) -> None:
    follower = follow(store, after="end")
    waiting = asyncio.create_task(anext(follower, None))
    await asyncio.sleep(0)
    await follower.aclose()
    assert await asyncio.wait_for(waiting, BOUND) is None


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
async def test_closing_the_store_ends_its_followers(tmp_path: Path, backend: str) -> None:
    from mfm_store import MemoryStore

    store: Store = MemoryStore() if backend == "memory" else \
        await SqliteStore.open(tmp_path / "f.db")
    run = RunId.new()
    await store.append(run, 0, ticks(run, 1, 1))
    follower = follow(store)
    assert len(await take(follower, 1)) == 1
    waiting = asyncio.create_task(anext(follower, None))
    await asyncio.sleep(0)
    await store.close()
    assert await asyncio.wait_for(waiting, BOUND) is None
    with pytest.raises(StorageError) as info:
        follow(store)
    assert info.value.info.code == "store_closed"


async def test_bad_cursors_are_refused(store: Store) -> None:
    run = RunId.new()
    for bad in ("", "{}", '{"run_id":null,"position":-1}', '{"run_id":"x","position":1}'):
        with pytest.raises(StorageError) as info:
            FollowCursor.parse(bad)
        assert info.value.info.code == "invalid_argument"
    with pytest.raises(StorageError) as info:
        follow(store, run, after=FollowCursor(None, 3))
    assert info.value.info.code == "invalid_argument"
    with pytest.raises(StorageError):
        follow(store, after=-1)


def spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, CHILD, *args], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT)


def finish(child: subprocess.Popen[str]) -> tuple[str, str]:
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    return out, err


async def test_a_follower_process_restarting_from_its_cursor_sees_every_event_once(
        tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    async with SqliteStore.open(path):
        pass  # the file exists before the follower opens it
    cursor = str(tmp_path / "cursor.json")
    runs, events = 4, 30
    total = runs * (events + 1)
    writer = spawn("write", str(path), str(runs), str(events))
    assert writer.stdout is not None and writer.stdin is not None
    assert writer.stdout.readline() == "ready\n"
    first = spawn("follow", str(path), cursor, str(total // 3))
    assert first.stdout is not None and first.stdout.readline() == "ready\n"
    writer.stdin.write("go\n")
    writer.stdin.flush()
    out1, _ = finish(first)
    second = spawn("follow", str(path), cursor, str(total - total // 3))
    out2, _ = finish(second)
    finish(writer)
    lines = out1.splitlines() + out2.splitlines()[1:]  # the second's "ready"
    seen = [line.split() for line in lines if line != "ready"]
    assert len(seen) == total
    assert len({(r, s) for r, s, _ in seen}) == total  # once each
    by_run: dict[str, list[int]] = {}
    for r, s, _ in seen:
        by_run.setdefault(r, []).append(int(s))
    assert all(seqs == list(range(1, events + 2)) for seqs in by_run.values())
    assert sum(kind == "RunCompleted" for _, _, kind in seen) == runs
    # the same order as a reader of the finished file gets: commit order
    async with SqliteStore.open(path) as store, store.follow() as again:
        replay = await take(again, total)
    assert [[str(e.run_id), str(e.seq)] for e in replay] == [[r, s] for r, s, _ in seen]
