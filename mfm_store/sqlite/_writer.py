"""Group commit: concurrent writes share one transaction and one fsync, and the event loop is
never held for longer than a short commit.

Operations (``Op[R]``) are plain functions of a cursor returning ``R``, written so that they
check before they write: a contract error (``MfmError``) leaves nothing behind. They may run on
the writer thread, so they touch nothing but the cursor and their own values. A batch made
only of operations of one ``Batchable`` class (one with a ``run_together(cur, ops)`` static
method) is first offered to it, as one ``executemany`` instead of a statement per operation
(``append_concurrent``); it returns the results, or ``None`` to have the batch run operation
by operation.

Batches: the operations submitted while no batch is in flight, by tasks ready in the same turn
of the loop, form one batch; those submitted while a batch is in flight (on the thread) form
the next one. A batch is one transaction (:func:`_commit`: ``BEGIN IMMEDIATE``, the
operations, ``COMMIT`` with its fsync); each caller is answered on the loop after the COMMIT
that holds its write, then ``on_commit`` is called. A contract error fails only its
operation; any other error of an operation (an SQLite error after it wrote) reruns the batch
with each operation in its own SAVEPOINT, so that one failing operation never affects the
others. A caller cancelled before its batch starts is not written. When another process
holds the write lock, the batch waits on the writer thread, up to the busy timeout (then
``store_busy``), and the loop goes on.

Where a batch runs (``commit_on_loop`` of ``SqliteStore.open``): ``True``, inline on the
loop's thread; ``False``, on the writer thread; ``None`` (the default), adaptively:

- A new writer starts in thread mode: a disk is first measured off the loop.
- Thread mode: the thread times each batch (wall time, ``BEGIN`` to ``COMMIT``). After
  ``SETTLE`` (8) consecutive batches each shorter than half of ``BUDGET`` (1 ms), the
  writer turns inline.
- Inline mode: the loop times each batch; one that took longer than ``BUDGET`` turns the
  writer back to thread mode (the counter starts again at zero), as does another process's
  lock (that batch waits on the thread).

So a disk whose commit takes milliseconds never commits on the loop after the start, a large
group-commit batch (its Python alone over the budget) goes to the thread, and a fast disk
commits a lone write on the loop, which spares it the two thread hand-overs (about 120 µs on
the benchmark VM: an idle vCPU to wake after each fsync; ``append_seq``). The budget is 1 ms
and not less because a lone durable commit takes 0.2-0.45 ms on that VM's disk: at 0.5 ms the
writer would stay on the thread there. The loop is then held at most about one budget per
commit (``loop_lag``), plus the rare batch that turns out slow (it moves the writer).

The connection is used by one thread at a time (the loop's or the writer's); hand-overs go
through the job queue and ``call_soon_threadsafe``. Its busy timeout is 0 for inline batches
(they must not wait on the loop) and the store's for the thread's.
"""
from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar, cast, runtime_checkable

from ..errors import CODE_STORE_CLOSED, MfmError, StorageError
from ._errors import is_busy, translate

R = TypeVar("R")

Op = Callable[[sqlite3.Cursor], R]
# (True, result) or (False, the error to raise in the caller)
Outcome = tuple[bool, Any]

_MAX_BATCH = 1000


@runtime_checkable
class Batchable(Protocol[R]):
    """An operation whose class can run a batch of its instances as one set of statements."""

    def __call__(self, cur: sqlite3.Cursor, /) -> R: ...

    @staticmethod
    def run_together(cur: sqlite3.Cursor, ops: list[Any], /) -> list[R] | None:
        """The results of ``ops`` (all of this class), or ``None`` to run them one by one
        (anything written is then rolled back)."""


class _Entry(Generic[R]):
    """A submitted operation and its caller's future; ``op`` None marks a :meth:`drain`."""

    __slots__ = ("fut", "op")

    def __init__(self, op: Op[R] | None, fut: asyncio.Future[R]) -> None:
        self.op, self.fut = op, fut


class _Busy(Exception):
    """Another process holds the write lock (an on-loop batch then waits on the thread)."""


class _Isolate(Exception):
    """An operation failed after writing; rerun the batch with one savepoint per operation."""


def _run_shared(cur: sqlite3.Cursor, ops: list[Op[Any]]) -> list[Outcome]:
    first = ops[0]
    # One executemany per statement for a batch of one class (append_concurrent).
    if (len(ops) > 1 and isinstance(first, Batchable)
            and all(type(op) is type(first) for op in ops)):
        cur.execute("SAVEPOINT together")
        results = first.run_together(cur, ops)
        if results is not None:
            cur.execute("RELEASE together")
            return [(True, r) for r in results]
        cur.execute("ROLLBACK TO together")
        cur.execute("RELEASE together")
    outcomes: list[Outcome] = []
    for op in ops:
        try:
            outcomes.append((True, op(cur)))
        except MfmError as exc:
            outcomes.append((False, exc))
        except Exception as exc:
            raise _Isolate from exc
    return outcomes


def _run_isolated(cur: sqlite3.Cursor, ops: list[Op[Any]], where: str,
                  failed: dict[int, BaseException]) -> list[Outcome]:
    """Each op in its own savepoint; the ops in ``failed`` are not run again."""
    outcomes: list[Outcome] = []
    for i, op in enumerate(ops):
        if i in failed:
            outcomes.append((False, failed[i]))
            continue
        cur.execute("SAVEPOINT op")
        try:
            result = op(cur)
        except Exception as exc:
            error = translate(exc, where)
            if not cur.connection.in_transaction:
                # SQLite rolled the whole transaction back (SQLITE_FULL may): the ops
                # before this one are lost too, so start again without this one.
                failed[i] = error
                raise _Isolate from exc
            cur.execute("ROLLBACK TO op")
            cur.execute("RELEASE op")
            outcomes.append((False, error))
        else:
            cur.execute("RELEASE op")
            outcomes.append((True, result))
    return outcomes


def _commit(cur: sqlite3.Cursor, ops: list[Op[Any]], where: str, *,
            fail_busy: bool = False) -> list[Outcome]:
    """BEGIN IMMEDIATE, run ``ops``, COMMIT: one outcome per op, never raises (for an
    ``Exception``) but ``_Busy`` when ``fail_busy`` and another process holds the lock.

    A contract error fails only its op. Any other error of an op reruns the batch with a
    savepoint per op (that op fails, translated; the others are written). An error of BEGIN or
    COMMIT (busy past the timeout, disk full...) fails every op: nothing was written.
    """
    failed: dict[int, BaseException] = {}
    isolate = False
    while True:
        try:
            cur.execute("BEGIN IMMEDIATE")
        except Exception as exc:
            if fail_busy and is_busy(exc):
                raise _Busy from exc
            return [(False, translate(exc, where))] * len(ops)
        try:
            outcomes = (_run_isolated(cur, ops, where, failed) if isolate
                        else _run_shared(cur, ops))
            cur.execute("COMMIT")
            return outcomes
        except Exception as exc:
            with contextlib.suppress(Exception):  # the error that made us roll back counts
                if cur.connection.in_transaction:
                    cur.execute("ROLLBACK")
            if isinstance(exc, _Isolate):  # each pass either ends or fails one more op
                isolate = True
                continue
            return [(False, translate(exc, where))] * len(ops)


def _others_ready(loop: asyncio.AbstractEventLoop) -> object:
    """Truthy when other callbacks wait in this loop turn (and might join the batch).

    Reads CPython's ready queue when it is there (a lone writer then hands its op over at
    once, a loop turn sooner: ``append_seq``); any other loop counts as busy, which only costs
    that turn.
    """
    return getattr(loop, "_ready", True)


# A batch on its way to the thread: its ops, their callers (in order), the drain markers.
_Job = tuple[list[Op[Any]], list[_Entry[Any]], list[_Entry[Any]], asyncio.AbstractEventLoop]


class GroupCommitWriter:
    """Owns the write connection and its thread; :meth:`run` returns after the COMMIT holding
    the op, holding the event loop at most for a short commit (see the module docstring)."""

    BUDGET = 0.001  # seconds: an inline batch longer than this moves the writer to the thread
    SETTLE = 8  # consecutive thread batches under BUDGET / 2 that bring it back inline

    def __init__(self, conn: sqlite3.Connection, where: str, busy_timeout_ms: int, *,
                 commit_on_loop: bool | None = None) -> None:
        self._conn = conn
        self._policy = commit_on_loop  # True inline, False thread, None adaptive
        self._inline = commit_on_loop is True  # adaptive starts on the thread
        self._fast = 0  # consecutive short thread batches (adaptive)
        # Instance copies, so that a test or benchmark can change one writer's rule.
        self.budget = self.BUDGET
        self.settle = self.SETTLE
        self._waits = False  # the connection's busy timeout is the store's (else 0)
        self._cur = conn.cursor()  # the loop's, for inline batches; the thread has its own
        self._where = where
        self._busy_timeout_ms = int(busy_timeout_ms)
        self._pending: list[_Entry[Any]] = []
        self._on_thread = False  # a batch is on the thread
        self._scheduled = False  # a flush waits in the loop's ready queue
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._closed = False
        # Called on the loop after each commit (followers of this store look at once).
        self.on_commit: Callable[[], None] | None = None

    @property
    def inline(self) -> bool:
        """True when the next batch runs on the loop's thread."""
        return self._inline

    async def run(self, op: Op[R]) -> R:
        """Run ``op`` in the next batch; return its result after COMMIT, or raise its error
        (``StorageError`` code ``store_closed`` once :meth:`close` ran)."""
        if self._closed:
            raise StorageError(f"{self._where}: store is closed", code=CODE_STORE_CLOSED)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[R] = loop.create_future()
        self._pending.append(_Entry(op, fut))
        if not (self._on_thread or self._scheduled):
            if _others_ready(loop):
                self._scheduled = True
                loop.call_soon(self._flush)  # after the tasks ready now: they may join
            else:
                self._flush()  # alone: no loop turn before the hand-over (append_seq)
        return await fut

    async def drain(self) -> None:
        """Wait until everything submitted so far is committed (or failed)."""
        if not (self._pending or self._on_thread):
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append(_Entry(None, fut))
        await fut

    def _flush(self) -> None:
        """Hand the pending operations to the thread as one batch (on the loop)."""
        self._scheduled = False
        while self._pending and not self._on_thread:
            # Cancelled callers are not written; drain markers are answered with the batch.
            entries: list[_Entry[Any]] = []
            markers: list[_Entry[Any]] = []
            for e in self._pending[:_MAX_BATCH]:
                if not e.fut.done():
                    (markers if e.op is None else entries).append(e)
            del self._pending[:_MAX_BATCH]
            if not entries:
                _release(markers)
                continue
            # Entries with an op (markers were set apart); a cast to Op[Any] here would
            # subscript a typing alias once per op at run time (~2.7 us each).
            ops: list[Op[Any]] = [e.op for e in entries]  # type: ignore[misc]
            if self._inline:
                if self._waits:
                    self._cur.execute("PRAGMA busy_timeout = 0")  # never wait on the loop
                    self._waits = False
                start = time.perf_counter()
                try:
                    outcomes = _commit(self._cur, ops, self._where, fail_busy=True)
                except _Busy:
                    # another process writes: wait for it on the thread
                    self._inline = self._policy is True
                else:
                    if self._policy is None and time.perf_counter() - start > self.budget:
                        self._inline, self._fast = False, 0
                    self._answer(entries, markers, outcomes)
                    continue
                self._fast = 0
            self._on_thread = True
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name="mfm-store-writer",
                                                daemon=True)
                self._thread.start()
            self._jobs.put((ops, entries, markers, asyncio.get_running_loop()))

    def _finish(self, entries: list[_Entry[Any]], markers: list[_Entry[Any]],
                outcomes: list[Outcome], took: float) -> None:
        """The thread committed a batch in ``took`` seconds (on the loop): answer, and run
        what formed meanwhile as the next batch (on the thread: hand it over first)."""
        self._on_thread = False
        if self._policy is None and not self._inline:
            self._fast = self._fast + 1 if took < self.budget / 2 else 0
            self._inline = self._fast >= self.settle
        if self._inline:
            self._answer(entries, markers, outcomes)
            if self._pending and not self._scheduled:
                self._flush()
            return
        if self._pending and not self._scheduled:
            self._flush()  # what formed during this commit is the next batch
        self._answer(entries, markers, outcomes)

    def _answer(self, entries: list[_Entry[Any]], markers: list[_Entry[Any]],
                outcomes: list[Outcome]) -> None:
        if self.on_commit is not None:
            self.on_commit()
        for entry, (ok, value) in zip(entries, outcomes, strict=True):
            fut = entry.fut
            if fut.done():
                continue  # cancelled while its batch ran: written all the same
            if ok:
                fut.set_result(value)
            else:
                fut.set_exception(cast(BaseException, value))
        _release(markers)

    def _serve(self) -> None:
        """The writer thread: one batch at a time, waiting for other processes' locks."""
        cur = self._conn.cursor()  # one for every statement, not one each (append_seq)
        wait = f"PRAGMA busy_timeout = {self._busy_timeout_ms}"
        while (job := self._jobs.get()) is not None:
            ops, entries, markers, loop = job
            start = time.perf_counter()
            try:
                if not self._waits:  # the loop's own batches must not wait, ours do
                    cur.execute(wait)
                    self._waits = True
                outcomes = _commit(cur, ops, self._where)
            except BaseException as exc:  # not an Exception: still answer every caller
                outcomes = [(False, exc)] * len(ops)
            took = time.perf_counter() - start
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
                loop.call_soon_threadsafe(self._finish, entries, markers, outcomes, took)
        cur.close()

    def close(self) -> None:
        """Stop the thread (after the batch it runs, if any) and close the connection."""
        if self._closed:
            return
        self._closed = True
        if self._thread is not None:
            self._jobs.put(None)
            self._thread.join()
        self._conn.close()


def _release(markers: list[_Entry[Any]]) -> None:
    for marker in markers:
        if not marker.fut.done():
            marker.fut.set_result(None)
