"""The write of an ``append`` on SQLite: event rows with their checksums, the run row as its
writer knows it, and the batchable operations the group-commit writer runs.

Operations check before they write (a contract error leaves nothing behind); see
:mod:`mfm_store.sqlite._writer`.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from .. import _rules
from ..events import EventEnvelope
from ..ids import RunId
from . import _checksums as cs
from . import _queries as q

__all__ = ["Append", "KnownRunAppend", "RunState", "event_rows", "new_run"]


def event_rows(run_id: RunId, rid: str, envelopes: list[EventEnvelope]
               ) -> tuple[list[tuple[Any, ...]], _rules.EventScan]:
    """The event rows of checked envelopes (:func:`_rules.event_rows`) and what their content
    makes (:func:`_rules.scan_events`)."""
    return _rules.event_rows(rid, envelopes), _rules.scan_events(run_id, envelopes)


class RunState:
    """A run row as its writer knows it: key, head, op id, status, creation time."""

    __slots__ = ("created", "head", "op_id", "pk", "prefix", "status")

    def __init__(self, pk: int, head: int, op_id: str | None, status: str,
                 created: int, prefix: str | None = None) -> None:
        self.pk, self.head, self.op_id, self.status, self.created = (
            pk, head, op_id, status, created)
        self.prefix = prefix  # cs.run_prefix of the row, once computed

    def advance(self, cur: sqlite3.Cursor, rid: str, head: int, now: int, op_id: str | None,
                status: str | None) -> RunState:
        """Write the row at ``head`` (op id and status set if given) with its checksum."""
        op_id = op_id or self.op_id
        status = status or self.status
        cur.execute(q.RUN_ADVANCE, (head, now, op_id, status,
                                    cs.run_sum(self.pk, rid, op_id, status, head, self.created,
                                               now), self.pk))
        return RunState(self.pk, head, op_id, status, self.created)


def new_run(cur: sqlite3.Cursor, rid: str, now: int) -> RunState:
    pk = cur.execute(q.RUN_INSERT, (rid, now, now)).lastrowid
    assert pk is not None
    return RunState(pk, 0, None, _rules.STATUS_RUNNING, now)


class Append:
    """The write of one ``append``: check the head, the fact bindings and the artifacts the
    events name, then write.

    Returns ``(new head, run state)`` (state None when nothing was written).
    """

    __slots__ = ("expected", "known", "new_head", "rid", "rows", "scan")

    def __init__(self, rid: str, expected: int, scan: _rules.EventScan,
                 rows: list[tuple[Any, ...]], known: RunState | None = None) -> None:
        self.rid, self.expected, self.new_head = rid, expected, expected + len(rows)
        self.scan, self.rows, self.known = scan, rows, known

    def __call__(self, cur: sqlite3.Cursor) -> tuple[int, RunState | None]:
        rid, expected, scan = self.rid, self.expected, self.scan
        row = cur.execute(q.RUN_STATE, (rid,)).fetchone()
        head = row[1] if row else 0
        if head != expected:
            raise _rules.head_moved(rid, expected, head)
        if not self.rows:
            return int(head), None
        new_bindings = []
        for key, (pid, seq) in scan.bindings.items():
            bound = row and cur.execute(q.BINDING_GET, (row[0], key)).fetchone()
            if not bound:
                new_bindings.append((key, pid, seq))
            elif bound[0] != pid:
                raise _rules.binding_conflict(rid, key, bound[0], pid)
        for ref, seq in scan.refs.items():
            if cur.execute(q.ARTIFACT_EXISTS, (ref,)).fetchone() is None:
                raise _rules.missing_artifact(rid, seq, ref)
        # Checks are done; writes follow (an op must not fail after it wrote).
        now = _rules.now_millis()
        state = RunState(*row) if row else new_run(cur, rid, now)
        pk = state.pk
        for key, pid, seq in new_bindings:
            cur.execute(q.BINDING_INSERT, (pk, key, pid, seq, cs.binding_sum(rid, key, pid, seq)))
        self._insert_events(cur, pk)
        return self.new_head, state.advance(cur, rid, self.new_head, now, scan.op_id,
                                            scan.status)

    def _insert_events(self, cur: sqlite3.Cursor, pk: int) -> None:
        if len(self.rows) == 1:
            cur.execute(q.EVENT_INSERT, (pk, *self.rows[0]))
        else:
            cur.executemany(q.EVENT_INSERT, [(pk, *r) for r in self.rows])


class KnownRunAppend(Append):
    """An append to a run whose key is known, of events that bind no fact, name no artifact
    and set neither op id nor status (the common case): one conditional UPDATE checks and
    moves the head, then the events go in. Appends of one batch run together (two
    ``executemany``); if any head moved, the general path decides."""

    __slots__ = ()

    def _moved(self, now: int) -> tuple[tuple[Any, ...], RunState]:
        known = self.known
        assert known is not None
        head = self.new_head
        prefix = known.prefix
        if prefix is None:
            prefix = cs.run_prefix(known.pk, self.rid, known.op_id, known.status)
        state = RunState(known.pk, head, known.op_id, known.status, known.created, prefix)
        checksum = cs.run_sum_at(prefix, head, known.created, now)
        return (head, now, checksum, known.pk, self.expected), state

    def __call__(self, cur: sqlite3.Cursor) -> tuple[int, RunState | None]:
        params, state = self._moved(_rules.now_millis())
        if cur.execute(q.RUN_MOVE_HEAD, params).rowcount != 1:
            return super().__call__(cur)
        pk, rows = state.pk, self.rows
        if len(rows) == 1:
            cur.execute(q.EVENT_INSERT, (pk, *rows[0]))
        else:
            cur.executemany(q.EVENT_INSERT, [(pk, *r) for r in rows])
        return self.new_head, state

    @staticmethod
    def run_together(cur: sqlite3.Cursor, ops: list[KnownRunAppend]
                     ) -> list[tuple[int, RunState | None]] | None:
        now = _rules.now_millis()
        moved = [o._moved(now) for o in ops]
        if cur.executemany(q.RUN_MOVE_HEAD, [m[0] for m in moved]).rowcount != len(ops):
            return None
        cur.executemany(q.EVENT_INSERT, [(m[1].pk, *r) for o, m in zip(ops, moved, strict=True)
                                         for r in o.rows])
        return [(o.new_head, m[1]) for o, m in zip(ops, moved, strict=True)]
