"""The fact writes of the SQLite store (``bind_fact``, ``record_fact``), as writer operations.

One :class:`FactWrite` binds a key of a run to a payload and appends its ``fact_recorded``
event at the run's head + 1, in one transaction, first writer wins. Nothing is written when the
key is already bound (the existing binding is the answer, ``inserted=False``), when the head is
not ``expected_seq``, or when an artifact the fact needs (the payload for ``bind_fact``, every
declared reference) is absent.

When the store knows the run's row (it wrote it last), the write needs no ``SELECT``: the
head moves with ``UPDATE ... WHERE`` the head is still the known one, the key is not bound (and,
for ``bind_fact``, the payload exists), so one statement both checks and writes; then plain
inserts of the binding, the payload artifact and the event. If that update changes no row (the
key is bound, the head moved, the payload is absent) nothing was written, and the general path
reads the run's row and the binding to find which. Writes of one batch, on distinct runs, go
together (:meth:`FactWrite.run_together`: one ``executemany`` per statement).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import cbor2

from .. import _rules
from .._io_common import CheckedKey
from ..canonical import content_id
from ..errors import NotFoundError
from ..events import DOMAIN_FACT_RECORDED, encode_event
from ..ids import ArtifactId, RunId
from ..stores import ArtifactKind, FactBinding
from . import _checksums as cs
from . import _queries as q

__all__ = ["FactWrite", "NewRow", "RunRow", "artifact_row", "check_bind", "fact_event_body"]

# (run_pk, head_seq, op_id, status, created_ms): what the store knows of a run it wrote.
RunRow = tuple[int, int, "str | None", str, int]
# The run's row after a write, with its checksum prefix (cs.run_prefix) for the next one.
NewRow = tuple[int, int, "str | None", str, int, str]
Result = tuple[FactBinding, "NewRow | None"]

_KIND = str(ArtifactKind.FACT_PAYLOAD)
_DOMAIN = "Domain"
# The event checksum's seed text after the seq, the same for every fact_recorded event.
_EVENT_TAIL = cs.event_tail(None, _DOMAIN, DOMAIN_FACT_RECORDED)

# The head move that checks, in the same statement, everything the fact needs: the run's row
# is the one the writer knows (?4 is still run ?6, at head ?5), the key ?7 is not bound and, for
# bind_fact, the payload ?8 is stored. No row updated means "look closer" (bound, moved or
# missing), with nothing written; once it updated, the plain inserts that follow cannot
# conflict (the transaction holds the write lock).
_MOVE_HEAD_IF_NEW = (
    "UPDATE runs SET head_seq = ?1, updated_ms = ?2, checksum = ?3"
    " WHERE run_pk = ?4 AND head_seq = ?5 AND run_id = ?6"
    " AND NOT EXISTS (SELECT 1 FROM fact_bindings WHERE run_pk = ?4 AND fact_key = ?7)"
)
_MOVE_HEAD_IF_NEW_AND_PAYLOAD = (
    _MOVE_HEAD_IF_NEW + " AND EXISTS (SELECT 1 FROM artifacts WHERE id = ?8)"
)


def _body_template() -> tuple[bytes, bytes, bytes]:
    """The bytes of a ``fact_recorded`` event body around its key and payload id, cut out
    of what :func:`encode_event` makes (so the two can never disagree; checked below)."""
    key, pid = "\u2603key\u2603", "0123456789abcdef" * 4
    whole = encode_event(_rules.fact_recorded_event(key, ArtifactId(pid)))
    k, p = cbor2.dumps(key), cbor2.dumps(pid)
    i, j = whole.index(k), whole.index(p)
    if not (i < j and p[:2] == b"\x78\x40"):
        raise AssertionError("unexpected fact_recorded encoding")
    return whole[:i], whole[i + len(k):j] + p[:2], whole[j + len(p):]


_HEAD, _MID, _TAIL = _body_template()


def fact_event_body(key: str, payload_id: str, refs: Sequence[str] = ()) -> bytes:
    """The CBOR body of the ``fact_recorded`` event of a new binding: byte for byte what
    ``encode_event(fact_recorded_event(key, payload_id, refs))`` makes, without building the
    event when there are no ``refs`` (``key`` is a checked fact key: valid Unicode)."""
    if refs:
        return encode_event(_rules.fact_recorded_event(key, ArtifactId(payload_id), refs))
    return b"".join((_HEAD, cbor2.dumps(key), _MID, payload_id.encode("ascii"), _TAIL))


def artifact_row(data: bytes, payload_id: str | None = None) -> tuple[Any, ...]:
    """The ``artifacts`` row of a fact payload (``payload_id``: its SHA-256, if known)."""
    aid = content_id(data) if payload_id is None else str(payload_id)
    size = len(data)
    # Exact str and bytes: sqlite3 binds a subclass (CheckedPayload, ArtifactId) only after a
    # failed adapter lookup, which costs more than the copy.
    if type(data) is not bytes:
        data = bytes(data)
    return (aid, _KIND, size, cs.artifact_sum(aid, _KIND, size, data), _rules.now_millis(),
            data)


class FactWrite:
    """The write of one ``bind_fact`` (``artifact`` None: the payload must be stored) or
    ``record_fact`` (``artifact``: the payload's row, stored with the binding).

    Returns ``(binding, run row after the write)`` (run row None when nothing was written).
    ``known`` is the run's row as the store last wrote it, if it did: the guess the fast path
    checks in SQL; ``prefix`` its checksum prefix (``cs.run_prefix``), if the store kept it.
    The rows and the answer of the fast path are made here, before the write: the batch
    itself (:meth:`run_together`) only runs SQL.
    """

    __slots__ = ("artifact", "bind_row", "body", "event_row", "expected", "key", "known",
                 "move_row", "now", "payload_id", "refs", "result", "rid")

    def __init__(self, rid: str, key: str, payload_id: ArtifactId, expected_seq: int | None,
                 artifact: tuple[Any, ...] | None, refs: Sequence[ArtifactId],
                 known: RunRow | None, prefix: str | None = None) -> None:
        self.rid, self.key, self.payload_id = rid, key, payload_id
        self.expected, self.artifact, self.refs, self.known = expected_seq, artifact, refs, known
        self.body = fact_event_body(key, payload_id, refs)
        self.now = _rules.now_millis() if artifact is None else artifact[4]
        # The fast path's answer; None: the general path decides.
        self.result: Result | None = None
        if known is not None and not refs and expected_seq in (None, known[1]):
            self.bind_row, self.event_row, self.move_row, self.result = self._rows(known,
                                                                                   prefix)

    def _rows(self, known: RunRow, prefix: str | None
              ) -> tuple[tuple[Any, ...], tuple[Any, ...], tuple[Any, ...], Result]:
        """The binding, event and head-move (with what it checks) rows at ``known``, and the
        answer once they are written."""
        pk, head, op_id, status, created = known
        rid, body, now = self.rid, self.body, self.now
        # Exact str: sqlite3 binds a subclass (CheckedKey, ArtifactId) through a slow lookup.
        key, pid = str(self.key), str(self.payload_id)
        if prefix is None:
            prefix = cs.run_prefix(pk, rid, op_id, status)
        seq = head + 1
        return ((pk, key, pid, seq, cs.binding_sum(rid, key, pid, seq)),
                (pk, seq, None, _DOMAIN, DOMAIN_FACT_RECORDED,
                 cs.event_sum_at(rid + "\0", seq, _EVENT_TAIL, body), body),
                (seq, now, cs.run_sum_at(prefix, seq, created, now), pk, head, rid, key)
                if self.artifact is not None else
                (seq, now, cs.run_sum_at(prefix, seq, created, now), pk, head, rid, key, pid),
                (FactBinding(self.payload_id, True, seq),
                 (pk, seq, op_id, status, created, prefix)))

    def __call__(self, cur: sqlite3.Cursor) -> Result:
        result = self.result
        if result is not None:
            move = (_MOVE_HEAD_IF_NEW if self.artifact is not None
                    else _MOVE_HEAD_IF_NEW_AND_PAYLOAD)
            if cur.execute(move, self.move_row).rowcount == 1:
                cur.execute(q.BINDING_INSERT, self.bind_row)
                if self.artifact is not None:
                    cur.execute(q.ARTIFACT_INSERT, self.artifact)
                cur.execute(q.EVENT_INSERT, self.event_row)
                return result
        return self._general(cur)

    def _general(self, cur: sqlite3.Cursor) -> Result:
        """Read the run's row and the binding, check, then write (nothing written on error)."""
        rid, key, payload_id = self.rid, self.key, self.payload_id
        row = cur.execute(q.RUN_STATE, (rid,)).fetchone()
        if row is not None:
            bound = cur.execute(q.BINDING_GET, (row[0], key)).fetchone()
            if bound is not None:
                return FactBinding(ArtifactId(bound[0]), False, bound[1]), None
        if self.artifact is None and cur.execute(
                q.ARTIFACT_EXISTS, (payload_id,)).fetchone() is None:
            raise NotFoundError(f"fact payload artifact not found: {payload_id}")
        for ref in self.refs:
            if cur.execute(q.ARTIFACT_EXISTS, (ref,)).fetchone() is None:
                raise NotFoundError(f"fact {key!r} refers to artifact {ref}, which is not "
                                    "in the store")
        head = row[1] if row else 0
        if self.expected is not None and head != self.expected:
            raise _rules.head_moved(rid, self.expected, head)
        # Checks are done; writes follow.
        if row is None:
            now = self.now
            pk = cur.execute(q.RUN_INSERT, (rid, now, now)).lastrowid
            assert pk is not None
            known: RunRow = (pk, 0, None, _rules.STATUS_RUNNING, now)
        else:
            known = (row[0], row[1], row[2], row[3], row[4])
        bind, event, move, result = self._rows(known, None)
        if self.artifact is not None:
            cur.execute(q.ARTIFACT_INSERT, self.artifact)
        cur.execute(q.EVENT_INSERT, event)
        cur.execute(q.BINDING_INSERT, bind)
        seq, now, checksum, pk = move[:4]
        cur.execute(q.RUN_ADVANCE, (seq, now, known[2], known[3], checksum, pk))
        return result

    @staticmethod
    def run_together(cur: sqlite3.Cursor, ops: list[FactWrite]) -> list[Result] | None:
        """Fast-path writes on distinct runs as one ``executemany`` per statement; ``None``
        (the writer then runs them one by one) if any cannot take the fast path."""
        if len({op.rid for op in ops}) != len(ops):
            return None
        binds, events, moves, artifacts, results = [], [], [], [], []
        for op in ops:
            result = op.result
            if result is None:
                return None
            results.append(result)
            binds.append(op.bind_row)
            events.append(op.event_row)
            moves.append(op.move_row)
            if op.artifact is not None:
                artifacts.append(op.artifact)
        if len(artifacts) == len(ops):
            move = _MOVE_HEAD_IF_NEW
        elif not artifacts:
            move = _MOVE_HEAD_IF_NEW_AND_PAYLOAD
        else:
            return None  # bind_fact and record_fact mixed: one by one
        if cur.executemany(move, moves).rowcount != len(ops):
            return None  # a key bound, a head moved or a payload missing: one by one
        cur.executemany(q.BINDING_INSERT, binds)
        if artifacts:
            cur.executemany(q.ARTIFACT_INSERT, artifacts)
        cur.executemany(q.EVENT_INSERT, events)
        return results


def check_bind(run_id: object, key: object, expected_seq: object) -> tuple[RunId, str]:
    """:func:`_rules.check_bind`, without scanning again a key ``LiveIo`` checked."""
    if type(key) is CheckedKey:
        rid = _rules.run_id_of(run_id)
        if expected_seq is not None:
            _rules.seq_of(expected_seq, "expected_seq")
        return rid, key
    return _rules.check_bind(run_id, key, expected_seq)
