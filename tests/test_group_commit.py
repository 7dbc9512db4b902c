"""Group commit and where it runs (``sqlite/_writer.py``), on real files.

A batch is held in flight by an operation that waits for a ``threading.Event`` only the loop
can set: had the batch run on the loop's thread, the loop could never set it. While it is
held, other callers submit, get cancelled, drain or close, deterministically. The writer's
modes (``commit_on_loop``: None adaptive, False thread, True loop) are switched by batches
slow by construction (an operation that spins past the budget) or counted fast (a budget of
an hour), never by a disk's luck.
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from mfm_store import (
    ArtifactId,
    ArtifactKind,
    ConcurrencyError,
    DomainEvent,
    EventEnvelope,
    NotFoundError,
    RunId,
    StorageError,
)
from mfm_store.sqlite import SqliteStore
from mfm_store.sqlite._writer import GroupCommitWriter

LOCK_HOLDER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("COMMIT")
print("released", flush=True)
"""


def tick(run: RunId, seq: int) -> EventEnvelope:
    return EventEnvelope(run, seq, None, DomainEvent("tick", {"seq": seq}))


def writer_of(store: SqliteStore) -> GroupCommitWriter:
    writer = store._writer
    assert writer is not None
    return writer


class Held:
    """An operation that holds its batch on the writer thread until :meth:`release`."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self._go = threading.Event()
        self.thread: int | None = None

    def __call__(self, cur: sqlite3.Cursor) -> str:
        self.thread = threading.get_ident()
        self.started.set()
        if not self._go.wait(30):
            raise AssertionError("the loop never released the held batch")
        return "held"

    def release(self) -> None:
        self._go.set()


async def until(condition: Callable[[], bool]) -> None:
    """Yield to the loop until ``condition`` holds (never a timed sleep)."""
    while not condition():
        await asyncio.sleep(0)


def where(cur: sqlite3.Cursor) -> int:
    """An operation answering the thread it ran on."""
    return threading.get_ident()


def slow(budget: float) -> Callable[[sqlite3.Cursor], int]:
    """An operation that takes twice ``budget`` (it spins: slow by construction)."""
    def op(cur: sqlite3.Cursor) -> int:
        end = time.perf_counter() + 2 * budget
        while time.perf_counter() < end:
            pass
        return threading.get_ident()
    return op


async def to_thread_mode(writer: GroupCommitWriter) -> None:
    """Move an adaptive writer to thread mode: an inline batch over the budget."""
    if writer.inline:
        assert await writer.run(slow(writer.budget)) == threading.get_ident()
    assert not writer.inline


async def settle(writer: GroupCommitWriter) -> None:
    """Bring an adaptive writer inline: ``settle`` batches counted fast."""
    writer.budget = 3600.0
    while not writer.inline:
        assert await writer.run(where) != threading.get_ident()


async def hold(writer: GroupCommitWriter) -> tuple[Held, asyncio.Task[str]]:
    await to_thread_mode(writer)
    held = Held()
    task = asyncio.create_task(writer.run(held))
    await asyncio.to_thread(held.started.wait, 30)  # the loop keeps running meanwhile
    assert held.started.is_set()
    return held, task


ALL_MODES = pytest.mark.parametrize("mode", [None, False, True],
                                    ids=["adaptive", "thread", "loop"])


@pytest.fixture(params=[None, False], ids=["adaptive", "thread"])
async def store(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[SqliteStore]:
    """A store whose writer can hold a batch on its thread."""
    async with SqliteStore.open(tmp_path / "g.db", commit_on_loop=request.param) as s:
        yield s


def count_commits(writer: GroupCommitWriter) -> list[int]:
    threads: list[int] = []
    writer.on_commit = lambda: threads.append(threading.get_ident())
    return threads


async def test_the_loop_runs_while_a_batch_is_on_thread(store: SqliteStore) -> None:
    writer = writer_of(store)
    commits = count_commits(writer)
    held, task = await hold(writer)
    # The batch waits on the writer thread; the loop serves reads and other callbacks.
    ran = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_soon(ran.set_result, "callback ran")
    assert await ran == "callback ran"
    assert await store.head_seq(RunId.new()) == 0
    assert not task.done()
    asyncio.get_running_loop().call_soon(held.release)  # only the loop can let it go
    assert await task == "held"
    assert held.thread != threading.get_ident()
    assert commits == [threading.get_ident()]  # on_commit runs on the loop, once per commit


async def test_what_forms_during_a_commit_is_the_next_batch(store: SqliteStore) -> None:
    writer = writer_of(store)
    commits = count_commits(writer)
    held, first = await hold(writer)
    runs = [RunId.new() for _ in range(50)]
    appends = [asyncio.create_task(store.append(r, 0, [tick(r, 1)])) for r in runs]
    await until(lambda: len(writer._pending) == len(runs))
    held.release()
    assert await first == "held"
    assert await asyncio.gather(*appends) == [1] * len(runs)
    assert len(commits) == 2  # the held batch, then all fifty together
    for r in runs:
        assert [e.seq for e in await store.read_range(r)] == [1]


@ALL_MODES
async def test_a_lone_caller_is_answered_after_its_own_commit(tmp_path: Path,
                                                              mode: bool | None) -> None:
    path = tmp_path / "seq.db"
    async with SqliteStore.open(path, commit_on_loop=mode) as store:
        commits = count_commits(writer_of(store))
        run = RunId.new()
        for seq in range(1, 21):
            assert await store.append(run, seq - 1, [tick(run, seq)]) == seq
            # committed before the answer: another connection sees it at once
            other = sqlite3.connect(path)
            try:
                row = other.execute("SELECT head_seq FROM runs WHERE run_id = ?",
                                    (str(run),)).fetchone()
            finally:
                other.close()
            assert row == (seq,)
        assert len(commits) == 20


async def test_contract_errors_fail_only_their_own_op(store: SqliteStore) -> None:
    writer = writer_of(store)
    commits = count_commits(writer)
    good = [RunId.new() for _ in range(5)]
    stale = RunId.new()
    await store.append(stale, 0, [tick(stale, 1)])
    held, first = await hold(writer)
    tasks = [asyncio.create_task(store.append(r, 0, [tick(r, 1)])) for r in good]
    bad_head = asyncio.create_task(store.append(stale, 0, [tick(stale, 1)]))
    missing = asyncio.create_task(store.bind_fact(good[0], "k", ArtifactId("0" * 64)))
    put = asyncio.create_task(store.put(ArtifactKind.OUTPUT, b"kept"))
    await until(lambda: len(writer._pending) == 8)
    held.release()
    await first
    assert await asyncio.gather(*tasks) == [1] * 5
    with pytest.raises(ConcurrencyError):
        await bad_head
    with pytest.raises(NotFoundError):
        await missing
    assert await store.exists(await put)
    assert len(commits) == 3  # the first append, the held batch, the eight together
    assert await store.head_seq(stale) == 1
    assert await store.facts(good[0]) == {}


async def test_an_sqlite_error_after_a_write_is_rolled_back_alone(store: SqliteStore) -> None:
    writer = writer_of(store)
    held, first = await hold(writer)
    run = RunId.new()

    def bad(cur: sqlite3.Cursor) -> None:
        cur.execute("INSERT INTO artifacts (id, kind, size, checksum, created_ms, data) "
                    "VALUES (?, 'Output', 1, 0, 0, x'00')", ("f" * 64,))
        cur.execute("SELECT * FROM no_such_table")  # fails after writing

    failing = asyncio.create_task(writer.run(bad))
    append = asyncio.create_task(store.append(run, 0, [tick(run, 1)]))
    put = asyncio.create_task(store.put(ArtifactKind.OUTPUT, b"also kept"))
    await until(lambda: len(writer._pending) == 3)
    held.release()
    await first
    with pytest.raises(StorageError) as err:
        await failing
    assert "no_such_table" in str(err.value)
    assert await append == 1
    assert await store.exists(await put)
    assert not await store.exists(ArtifactId("f" * 64))
    assert (await store.verify()).ok


async def test_a_caller_cancelled_before_its_batch_is_not_written(store: SqliteStore) -> None:
    writer = writer_of(store)
    held, first = await hold(writer)
    gone, kept = RunId.new(), RunId.new()
    cancelled = asyncio.create_task(store.append(gone, 0, [tick(gone, 1)]))
    answered = asyncio.create_task(store.append(kept, 0, [tick(kept, 1)]))
    await until(lambda: len(writer._pending) == 2)
    cancelled.cancel()
    first.cancel()  # its batch has started: written all the same
    held.release()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await answered == 1
    await writer.drain()
    assert await store.head_seq(gone) == 0
    assert await store.head_seq(kept) == 1


async def test_drain_and_close_wait_for_everything_submitted(tmp_path: Path) -> None:
    path = tmp_path / "close.db"
    store = await SqliteStore.open(path)
    writer = writer_of(store)
    await writer.drain()  # idle: returns at once
    held, first = await hold(writer)
    runs = [RunId.new() for _ in range(10)]
    tasks = [asyncio.create_task(store.append(r, 0, [tick(r, 1)])) for r in runs]
    await until(lambda: len(writer._pending) == len(runs))
    drained = asyncio.create_task(writer.drain())
    closing = asyncio.create_task(store.close())
    await until(lambda: len(writer._pending) > len(runs))  # drain's marker, after them
    assert not drained.done() and not closing.done()
    held.release()
    await drained
    assert all(t.done() for t in tasks)  # drain returned after every earlier caller
    await closing
    assert await first == "held"
    assert await asyncio.gather(*tasks) == [1] * len(runs)
    with pytest.raises(StorageError) as err:
        await store.append(runs[0], 1, [tick(runs[0], 2)])
    assert err.value.info.code == "store_closed"
    async with SqliteStore.open(path, read_only=True) as again:
        assert [await again.head_seq(r) for r in runs] == [1] * len(runs)


@ALL_MODES
async def test_another_process_holding_the_lock_is_waited_for(tmp_path: Path,
                                                              mode: bool | None) -> None:
    path = tmp_path / "busy.db"
    async with SqliteStore.open(path, commit_on_loop=mode) as store:
        writer = writer_of(store)
        commits = count_commits(writer)
        holder = await asyncio.create_subprocess_exec(
            sys.executable, "-c", LOCK_HOLDER, str(path), stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE)
        assert holder.stdin is not None and holder.stdout is not None
        assert await holder.stdout.readline() == b"locked\n"
        run = RunId.new()
        append = asyncio.create_task(store.append(run, 0, [tick(run, 1)]))
        await until(lambda: writer._on_thread)
        # The writer thread waits for the lock; the loop reads and talks to the holder.
        assert await store.head_seq(run) == 0
        assert not append.done() and commits == []
        holder.stdin.write(b"go\n")
        await holder.stdin.drain()
        assert await holder.stdout.readline() == b"released\n"
        assert await append == 1
        assert await holder.wait() == 0
        assert len(commits) == 1


@ALL_MODES
async def test_a_lock_held_past_the_busy_timeout_is_store_busy(tmp_path: Path,
                                                               mode: bool | None) -> None:
    path = tmp_path / "busy.db"
    async with SqliteStore.open(path, busy_timeout=0.05, commit_on_loop=mode) as store:
        holder = await asyncio.create_subprocess_exec(
            sys.executable, "-c", LOCK_HOLDER, str(path), stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE)
        assert holder.stdin is not None and holder.stdout is not None
        assert await holder.stdout.readline() == b"locked\n"
        run = RunId.new()
        with pytest.raises(StorageError) as err:
            await store.append(run, 0, [tick(run, 1)])
        assert err.value.info.code == "store_busy"
        holder.stdin.write(b"go\n")
        await holder.stdin.drain()
        assert await holder.wait() == 0
        assert await store.append(run, 0, [tick(run, 1)]) == 1


async def test_batches_of_one_class_run_together(store: SqliteStore) -> None:
    runs = [RunId.new() for _ in range(30)]
    for r in runs:
        await store.append(r, 0, [tick(r, 1)])  # known runs: the batchable append
    writer = writer_of(store)
    await to_thread_mode(writer)
    commits = count_commits(writer)
    held, first = await hold(writer)
    tasks = [asyncio.create_task(store.append(r, 1, [tick(r, 2)])) for r in runs]
    stale = asyncio.create_task(store.append(runs[0], 1, [tick(runs[0], 2)]))
    await until(lambda: len(writer._pending) == len(runs) + 1)
    held.release()
    await first
    assert await asyncio.gather(*tasks) == [2] * len(runs)
    with pytest.raises(ConcurrencyError):  # the batch fell back to one op at a time
        await stale
    assert len(commits) == 2
    assert (await store.verify()).ok


# inline batches (commit_on_loop=True, or adaptive once settled) run on the loop's thread,
# waiting for a lock on the thread


@pytest.mark.parametrize("mode", [True, None], ids=["loop", "adaptive"])
async def test_on_loop_commits_answer_after_commit_and_group(tmp_path: Path,
                                                             mode: bool | None) -> None:
    path = tmp_path / "loop.db"
    async with SqliteStore.open(path, commit_on_loop=mode) as store:
        writer = writer_of(store)
        await settle(writer)
        commits = count_commits(writer)
        run = RunId.new()
        assert await store.append(run, 0, [tick(run, 1)]) == 1
        other = sqlite3.connect(path)
        try:
            assert other.execute("SELECT head_seq FROM runs").fetchall() == [(1,)]
        finally:
            other.close()
        stale = asyncio.ensure_future(store.append(run, 0, [tick(run, 1)]))
        runs = [RunId.new() for _ in range(20)]
        results = await asyncio.gather(*(store.append(r, 0, [tick(r, 1)]) for r in runs))
        assert results == [1] * len(runs)
        with pytest.raises(ConcurrencyError):
            await stale
        assert commits == [threading.get_ident()] * 2  # one, then the 21 of one turn
        assert (await store.verify()).ok


async def test_on_loop_commits_wait_for_another_process_off_the_loop(tmp_path: Path) -> None:
    path = tmp_path / "loop_busy.db"
    async with SqliteStore.open(path, commit_on_loop=True) as store:
        writer = writer_of(store)
        holder = await asyncio.create_subprocess_exec(
            sys.executable, "-c", LOCK_HOLDER, str(path), stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE)
        assert holder.stdin is not None and holder.stdout is not None
        assert await holder.stdout.readline() == b"locked\n"
        run = RunId.new()
        append = asyncio.create_task(store.append(run, 0, [tick(run, 1)]))
        await until(lambda: writer._on_thread)  # on the thread, waiting for the lock
        assert await store.head_seq(run) == 0
        holder.stdin.write(b"go\n")
        await holder.stdin.drain()
        assert await append == 1
        assert await holder.wait() == 0
        assert await store.append(run, 1, [tick(run, 2)]) == 2  # back on the loop


@ALL_MODES
async def test_a_writer_used_after_close_refuses_at_once(tmp_path: Path,
                                                         mode: bool | None) -> None:
    store = await SqliteStore.open(tmp_path / "late.db", commit_on_loop=mode)
    writer = writer_of(store)  # as a long operation (prune) holds it across awaits
    run = RunId.new()
    await store.append(run, 0, [tick(run, 1)])
    await store.close()
    with pytest.raises(StorageError) as err:
        await writer.run(lambda cur: None)
    assert err.value.info.code == "store_closed"


# the adaptive rule


async def test_adaptive_writer_moves_by_measured_batch_time(tmp_path: Path) -> None:
    loop_thread = threading.get_ident()
    async with SqliteStore.open(tmp_path / "adapt.db") as store:
        writer = writer_of(store)
        settle_after = writer.settle
        assert (writer.budget, settle_after) == (0.001, 8)
        assert not writer.inline  # a new writer measures the disk off the loop first
        writer.budget = 3600.0  # every batch now counts as fast...
        for _ in range(settle_after - 1):
            assert await writer.run(where) != loop_thread
        writer.budget = 0.0  # ...but this one (no batch takes under 0 s): count again
        assert await writer.run(where) != loop_thread
        writer.budget = 3600.0
        for _ in range(settle_after - 1):
            assert await writer.run(where) != loop_thread
        assert not writer.inline
        assert await writer.run(where) != loop_thread  # the eighth in a row
        assert writer.inline
        # Inline: the batch runs on the loop's thread, answered after its COMMIT.
        run = RunId.new()
        assert await writer.run(where) == loop_thread
        assert await store.append(run, 0, [tick(run, 1)]) == 1
        other = sqlite3.connect(tmp_path / "adapt.db")
        try:
            assert other.execute("SELECT head_seq FROM runs").fetchall() == [(1,)]
        finally:
            other.close()
        # One inline batch over the budget moves the writer to its thread...
        writer.budget = 0.001
        assert await writer.run(slow(writer.budget)) == loop_thread
        assert not writer.inline
        # ...where a batch held until the loop lets it go shows the loop is free.
        held, task = await hold(writer)
        asyncio.get_running_loop().call_soon(held.release)
        assert await task == "held"
        assert held.thread != loop_thread
        assert not writer.inline  # one slow batch on the thread: still there
        await settle(writer)
        assert await store.append(run, 1, [tick(run, 2)]) == 2
        assert await writer.run(where) == loop_thread
        assert (await store.verify()).ok


async def test_a_large_batch_over_the_budget_goes_to_the_thread(tmp_path: Path) -> None:
    loop_thread = threading.get_ident()
    async with SqliteStore.open(tmp_path / "large.db") as store:
        writer = writer_of(store)
        await settle(writer)
        writer.budget = 0.001
        commits = count_commits(writer)
        runs = [RunId.new() for _ in range(20)]
        # One turn of the loop: one batch, inline, over the budget (a slow op among appends).
        first = asyncio.gather(writer.run(slow(writer.budget)),
                               *(store.append(r, 0, [tick(r, 1)]) for r in runs))
        assert await first == [loop_thread] + [1] * len(runs)
        assert not writer.inline and len(commits) == 1
        # The next group commit runs on the thread.
        second = await asyncio.gather(*(writer.run(where) for _ in range(5)),
                                      *(store.append(r, 1, [tick(r, 2)]) for r in runs))
        assert all(t != loop_thread for t in second[:5]) and second[5:] == [2] * len(runs)
        assert len(commits) == 2


@pytest.mark.parametrize("mode", [False, True], ids=["thread", "loop"])
async def test_fixed_modes_never_move(tmp_path: Path, mode: bool) -> None:
    loop_thread = threading.get_ident()
    async with SqliteStore.open(tmp_path / "fixed.db", commit_on_loop=mode) as store:
        writer = writer_of(store)
        writer.budget = 3600.0 if not mode else 0.0
        for _ in range(2 * writer.settle + 1):
            assert (await writer.run(where) == loop_thread) is mode
        assert (await writer.run(slow(0.001)) == loop_thread) is mode
        assert writer.inline is mode
