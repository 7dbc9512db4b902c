"""Group commit: concurrent write operations share one transaction and one fsync.

Operations are plain functions of the writer's cursor, written so that they check before they
write: a contract error (``MfmError``) leaves nothing behind. They share that one cursor
(cheaper than a cursor per statement), so each must fetch a statement's rows before running the
next. A batch made only of operations of one class with a ``run_together(cur, ops)`` static
method is first offered to it (one ``executemany`` instead of a statement per operation); it
returns the results, or ``None`` to have the batch run operation by operation. Those submitted
by tasks that are ready in the same turn of the event loop form one batch: the first task to
submit leads, yields once so that the others can join, then runs the batch and one COMMIT; every
caller is answered only after that COMMIT. If an operation fails in any other way (an SQLite
error after it wrote), the batch is rolled back and run again with each operation in its own
SAVEPOINT, so that one failing operation never affects the others.

A batch runs on the event loop's thread: at this size of work a hop to another thread costs
about as much as the transaction itself, so the loop is held for the length of one commit. When
another process holds the write lock, the batch moves to a private thread that waits for the
lock (bounded by the busy timeout), so the loop is never blocked by another writer.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..errors import MfmError
from ._errors import is_busy, translate

Op = Callable[[sqlite3.Cursor], Any]
Outcome = tuple[bool, Any]
Entry = tuple[Op, "asyncio.Future[Any]"]

_MAX_BATCH = 1000


class _Busy(Exception):
    """The inline attempt met another process's write lock; retry the batch on the thread."""


class _Isolate(Exception):
    """An operation failed after writing; rerun the batch with one savepoint per operation."""


def _run_shared(cur: sqlite3.Cursor, ops: list[Op], where: str) -> list[Outcome]:
    outcomes: list[Outcome] = []
    together = getattr(ops[0], "run_together", None)
    if together is not None and len(ops) > 1 and all(type(op) is type(ops[0]) for op in ops):
        # Ops of one kind may run as one set of statements; None means "not this time".
        cur.execute("SAVEPOINT together")
        results = together(cur, ops)
        if results is not None:
            cur.execute("RELEASE together")
            return [(True, r) for r in results]
        cur.execute("ROLLBACK TO together")
        cur.execute("RELEASE together")
    for op in ops:
        try:
            outcomes.append((True, op(cur)))
        except MfmError as exc:
            outcomes.append((False, exc))
        except Exception as exc:
            raise (_Busy() if is_busy(exc) else _Isolate()) from exc
    return outcomes


def _run_isolated(cur: sqlite3.Cursor, ops: list[Op], where: str) -> list[Outcome]:
    outcomes: list[Outcome] = []
    for op in ops:
        cur.execute("SAVEPOINT op")
        try:
            result = op(cur)
        except Exception as exc:
            cur.execute("ROLLBACK TO op")
            cur.execute("RELEASE op")
            outcomes.append((False, translate(exc, where)))
        else:
            cur.execute("RELEASE op")
            outcomes.append((True, result))
    return outcomes


def _run_batch(cur: sqlite3.Cursor, ops: list[Op], where: str, *,
               inline: bool) -> list[Outcome]:
    """BEGIN IMMEDIATE, run ``ops``, COMMIT; one outcome per op.

    Raises ``_Busy`` (after rolling back) if ``inline`` and another process holds the lock.
    """
    isolate = False
    while True:
        try:
            cur.execute("BEGIN IMMEDIATE")
            runner = _run_isolated if isolate else _run_shared
            outcomes = runner(cur, ops, where)
            cur.execute("COMMIT")
            return outcomes
        except Exception as exc:
            if cur.connection.in_transaction:
                cur.execute("ROLLBACK")
            busy = isinstance(exc, _Busy) or is_busy(exc)
            if busy and inline:
                raise _Busy from exc
            if isinstance(exc, _Isolate) and not isolate:
                isolate = True
                continue
            cause = exc.__cause__ if isinstance(exc, _Busy | _Isolate) else exc
            return [(False, translate(cause or exc, where))] * len(ops)


def _others_ready(loop: asyncio.AbstractEventLoop) -> object:
    """Truthy when other callbacks wait in this loop turn (and might join the batch).

    Reads CPython's ready queue when it is there (a lone writer then skips one loop turn);
    any other loop counts as busy, which only costs that turn.
    """
    return getattr(loop, "_ready", True)


class GroupCommitWriter:
    """Owns the write connection; :meth:`run` returns after the commit holding the op."""

    def __init__(self, conn: sqlite3.Connection, where: str, busy_timeout_ms: int) -> None:
        self._conn = conn
        self._cur = conn.cursor()
        self._where = where
        self._wait_pragma = f"PRAGMA busy_timeout = {int(busy_timeout_ms)}"
        self._pending: list[Entry] = []
        self._leading = False
        self._scheduled = False
        self._on_thread = False
        self._thread: ThreadPoolExecutor | None = None
        # Called on the loop after each commit (followers of this store look at once).
        self.on_commit: Callable[[], None] | None = None

    async def run(self, op: Op) -> Any:
        """Run ``op`` in the next batch; return its result after COMMIT, or raise its error."""
        loop = asyncio.get_running_loop()
        if not (self._pending or self._leading or self._scheduled or self._on_thread
                or _others_ready(loop)):
            # Alone in this turn of the loop: a batch of one, inline and
            # without a future. This path is kept flat: after a commit that waited for fsync
            # every function entered costs several times its usual time.
            cur = self._cur
            try:
                cur.execute("BEGIN IMMEDIATE")
                result = op(cur)
                cur.execute("COMMIT")
                if self.on_commit is not None:
                    self.on_commit()
                return result
            except BaseException as exc:
                if cur.connection.in_transaction:
                    cur.execute("ROLLBACK")
                if isinstance(exc, MfmError):
                    raise
                if not is_busy(exc):
                    if isinstance(exc, Exception):
                        raise translate(exc, self._where) from exc
                    raise
                # Another process writes: take the general path (it waits on a thread).
        fut: asyncio.Future[Any] = loop.create_future()
        self._pending.append((op, fut))
        if not (self._leading or self._scheduled or self._on_thread):
            self._leading = True
            try:
                if _others_ready(loop):
                    await asyncio.sleep(0)  # let the other ready tasks join this batch
            except asyncio.CancelledError:
                fut.cancel()  # not written: the batch has not started
                raise
            finally:
                self._leading = False
                self._flush()
        return await fut

    def _flush(self) -> None:
        self._scheduled = False
        if self._on_thread:
            return
        if len(self._pending) <= _MAX_BATCH:
            batch, self._pending = self._pending, []
        else:
            batch, self._pending = self._pending[:_MAX_BATCH], self._pending[_MAX_BATCH:]
        if any(fut.done() for _, fut in batch):  # cancelled callers are not written
            batch = [entry for entry in batch if not entry[1].done()]
        if batch:
            ops = [op for op, _ in batch]
            try:
                outcomes = _run_batch(self._cur, ops, self._where, inline=True)
            except _Busy:
                self._on_thread = True
                asyncio.get_running_loop().create_task(self._flush_on_thread(batch))
                return
            _deliver(batch, outcomes)
            if self.on_commit is not None:
                self.on_commit()
        if self._pending and not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    async def _flush_on_thread(self, batch: list[Entry]) -> None:
        if self._thread is None:
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="mfm-store-writer")
        ops = [op for op, _ in batch]
        try:
            outcomes = await asyncio.get_running_loop().run_in_executor(
                self._thread, self._blocking_batch, ops)
        finally:
            self._on_thread = False
        _deliver(batch, outcomes)
        if self.on_commit is not None:
            self.on_commit()
        self._flush()

    def _blocking_batch(self, ops: list[Op]) -> list[Outcome]:
        self._cur.execute(self._wait_pragma)
        try:
            return _run_batch(self._cur, ops, self._where, inline=False)
        finally:
            self._cur.execute("PRAGMA busy_timeout = 0")

    async def drain(self) -> None:
        """Wait until everything submitted so far is committed (or failed)."""
        await self.run(lambda cur: None)

    def close(self) -> None:
        if self._thread is not None:
            self._thread.shutdown(wait=True)
        self._conn.close()


def _deliver(batch: list[Entry], outcomes: list[Outcome]) -> None:
    for (_, fut), (ok, value) in zip(batch, outcomes, strict=True):
        if fut.done():
            continue
        if ok:
            fut.set_result(value)
        else:
            fut.set_exception(value)
