"""Whole-file integrity check (SPEC §5.4): every problem is reported, none stops the scan.

The checks are the steps of :mod:`._verify_steps`, run in order on one read transaction.

``verify`` ok means every public read returns what was written: SQLite's own structure
(``PRAGMA integrity_check``: pages, indexes against tables, types), the schema objects
against those of the file's version, every row checksum (which covers every column a read
returns or relies on), every artifact's SHA-256, and the exact cross-checks of each run row
against its events (head, status, op id, run id).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

import attrs

from .. import _rules
from ._verify_steps import DEPENDS, STEPS, TEMP_STORE

__all__ = ["Problem", "VerifyReport", "artifact_refs"]

artifact_refs = _rules.artifact_refs  # also imported from here by other modules


@attrs.frozen(kw_only=True)
class Problem:
    """One integrity problem; ``run_id``/``seq`` or ``artifact_id`` say where."""

    kind: str
    message: str
    run_id: str | None = None
    seq: int | None = None
    artifact_id: str | None = None

    def __str__(self) -> str:
        where = []
        if self.run_id is not None:
            where.append(f"run {self.run_id}")
        if self.seq is not None:
            where.append(f"seq {self.seq}")
        if self.artifact_id is not None:
            where.append(f"artifact {self.artifact_id}")
        return f"[{self.kind}] {', '.join(where)}: {self.message}" if where else \
            f"[{self.kind}] {self.message}"


@attrs.frozen
class VerifyReport:
    """Result of ``verify()``: ``ok`` is True when ``problems`` is empty.

    ``quick`` says the lighter check ran (``PRAGMA quick_check``, which does not compare
    indexes with their tables) instead of the full ``PRAGMA integrity_check``.
    """

    problems: list[Problem]
    runs: int = 0
    events: int = 0
    artifacts: int = 0
    bindings: int = 0
    quick: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems

    def __str__(self) -> str:
        head = (f"checked {self.runs} runs, {self.events} events, {self.bindings} fact "
                f"bindings, {self.artifacts} artifacts")
        if self.quick:
            head += " (quick check: indexes were not compared with their tables)"
        head += ": "
        if self.ok:
            return head + "ok"
        lines = [head + f"{len(self.problems)} problem(s)"]
        lines += [f"  {p}" for p in self.problems]
        return "\n".join(lines)


_TICK = 1000


def verify_connection(conn: Any, version: int, quick: bool,
                      tick: Callable[[int], None] | None = None) -> VerifyReport:
    """Run every check on an autocommit sqlite3 connection (in a worker thread), all in one
    read transaction: on a live file, writes made meanwhile are not seen half-way.

    ``tick(n)`` is called as rows are checked (artifacts, events, bindings; ``n`` at a time).
    An SQLite error while reading (a file too damaged to read) is reported, not raised.
    Memory stays bounded: see :mod:`._verify_steps`.
    """
    conn.execute(TEMP_STORE)  # the steps' notes go to a file, not to memory
    conn.execute("BEGIN")
    try:
        return Verifier(conn, version, quick, tick).run()
    finally:
        conn.execute("COMMIT")


def _lenient_text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


class Verifier:
    """The state the steps share: the connection, the problems found, the counts."""

    def __init__(self, conn: Any, version: int, quick: bool,
                 tick: Callable[[int], None] | None) -> None:
        self.conn = conn
        self.v3 = version >= 3
        self.version = version
        self.quick = quick
        self.tick = tick
        self.pending = 0  # rows checked since the last tick
        self.problems: list[Problem] = []
        self.counts = {"runs": 0, "events": 0, "artifacts": 0, "bindings": 0}

    def add(self, kind: str, message: str, **where: Any) -> None:
        self.problems.append(Problem(kind=kind, message=message, **where))

    def checked(self, n: int = 1) -> None:
        """``n`` more rows checked: progress is reported every ``_TICK`` rows."""
        self.pending += n
        if self.pending >= _TICK and self.tick is not None:
            self.tick(self.pending)
            self.pending = 0

    def _step(self, step: Callable[[Verifier], None]) -> None:
        """Run ``step`` reading text as ``str`` (fast); if that fails, once more from the
        start reading damaged text leniently (its bad bytes escaped, so it fails every
        comparison and checksum: reported, not raised)."""
        problems, counts = len(self.problems), dict(self.counts)
        self.conn.text_factory = str
        try:
            step(self)
            return
        except sqlite3.OperationalError:
            del self.problems[problems:]
            self.counts = counts
        self.conn.text_factory = _lenient_text
        step(self)

    def run(self) -> VerifyReport:
        failed: set[str] = set()
        for step in STEPS:
            if step.__name__ in DEPENDS and DEPENDS[step.__name__] & failed:
                continue  # what it cross-checks against was not all read
            try:
                self._step(step)
            except sqlite3.Error as exc:
                failed.add(step.__name__)
                self.add("sqlite", f"the file cannot be read: {exc}")
            except (TypeError, ValueError, OverflowError) as exc:
                # A column of the wrong type (a damaged record header) stops the step here.
                failed.add(step.__name__)
                self.add("row_type", f"a row cannot be checked: {exc!r}")
        if self.tick is not None and self.pending:
            self.tick(self.pending)
        return VerifyReport(self.problems, quick=self.quick, **self.counts)
