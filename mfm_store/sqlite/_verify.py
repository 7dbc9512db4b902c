"""Whole-file integrity check (SPEC §5.4): every problem is reported, none stops the scan.

``verify`` ok means every public read returns what was written: SQLite's own structure
(``PRAGMA integrity_check``: pages, indexes against tables, types), the schema objects
against those of the file's version, every row checksum (which covers every column a read
returns or relies on), every artifact's SHA-256, and the exact cross-checks of each run row
against its events (head, status, op id, run id).
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable
from typing import Any

import attrs

from .. import _rules
from ..events import Event, decode_event
from ..ids import RunId
from . import _checksums as cs
from . import _queries as q
from ._schema import expected_objects, schema_objects

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
    """
    # Damaged text must be reported, not raised: it is read with its bad bytes escaped (and so
    # fails every comparison and checksum).
    conn.text_factory = _lenient_text
    conn.execute("BEGIN")
    try:
        return _Verifier(conn, version, tick).run(quick)
    finally:
        conn.execute("COMMIT")


def _lenient_text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


class _Verifier:
    def __init__(self, conn: Any, version: int, tick: Callable[[int], None] | None) -> None:
        self.conn = conn
        self.v3 = version >= 3
        self.version = version
        self.tick = tick
        self.done = 0
        self.problems: list[Problem] = []
        self.counts = {"runs": 0, "events": 0, "artifacts": 0, "bindings": 0}

    def add(self, kind: str, message: str, **where: Any) -> None:
        self.problems.append(Problem(kind=kind, message=message, **where))

    def checked(self) -> None:
        self.done += 1
        if self.tick is not None and self.done % _TICK == 0:
            self.tick(_TICK)

    def run(self, quick: bool) -> VerifyReport:
        steps: list[Callable[[], None]] = [
            lambda: self.sqlite_check(quick), self.schema_check, self.rows_check]
        for step in steps:
            try:
                step()
            except sqlite3.Error as exc:
                self.add("sqlite", f"the file cannot be read: {exc}")
            except (TypeError, ValueError, OverflowError) as exc:
                # A column of the wrong type (a damaged record header) stops the step here.
                self.add("row_type", f"a row cannot be checked: {exc!r}")
        if self.tick is not None and self.done % _TICK:
            self.tick(self.done % _TICK)
        return VerifyReport(self.problems, quick=quick, **self.counts)

    def sqlite_check(self, quick: bool) -> None:
        found = [row[0] for row in self.conn.execute(
            q.QUICK_CHECK if quick else q.INTEGRITY_CHECK).fetchall()]
        if found != ["ok"]:
            for message in found:
                self.add("sqlite", str(message))

    def schema_check(self) -> None:
        expected = {(t, n): (tbl, sql) for t, n, tbl, sql in expected_objects(self.version)}
        found = {(t, n): (tbl, sql) for t, n, tbl, sql in schema_objects(self.conn)}
        for key in sorted(expected.keys() | found.keys()):
            kind, name = key
            if key not in found:
                self.add("schema", f"{kind} {name} is missing")
            elif key not in expected:
                self.add("schema", f"{kind} {name} is not part of schema version "
                                   f"{self.version}")
            elif found[key] != expected[key]:
                self.add("schema", f"{kind} {name} differs from schema version {self.version}")

    def rows_check(self) -> None:
        artifact_ids = self.artifacts_check()
        runs = self.runs_check()
        last, op_ids, statuses, first_binding = self.events_check(runs, artifact_ids)
        for pk, (rid, op_id, status, head) in runs.items():
            if last.get(pk, 0) != head:
                self.add("head_mismatch", f"runs.head_seq is {head}, last event is "
                                          f"{last.get(pk, 0)}", run_id=rid)
            want_status = statuses.get(pk, _rules.STATUS_RUNNING)
            if status != want_status:
                self.add("run_status", f"runs.status is {status!r}, its events say "
                                       f"{want_status!r}", run_id=rid)
            if op_id != op_ids.get(pk):
                self.add("run_op_id", f"runs.op_id is {op_id!r}, its RunStarted says "
                                      f"{op_ids.get(pk)!r}", run_id=rid)
        self.bindings_check(runs, artifact_ids, first_binding)

    def artifacts_check(self) -> set[str]:
        ids: set[str] = set()
        for aid, kind, size, stored, data in self.conn.execute(q.VERIFY_ARTIFACTS):
            self.checked()
            self.counts["artifacts"] += 1
            ids.add(aid)
            if not isinstance(data, bytes) or not isinstance(aid, str):
                self.add("artifact_row", "row has the wrong column types", artifact_id=str(aid))
                continue
            ok = (cs.artifact_sum(aid, kind, size, data) if self.v3
                  else cs.legacy_artifact_sum(data)) == stored
            if not ok:
                self.add("artifact_checksum", "stored row fails its xxh3 checksum",
                         artifact_id=aid)
            if hashlib.sha256(data).hexdigest() != aid:
                self.add("artifact_hash", "SHA-256 of the bytes is not the artifact id",
                         artifact_id=aid)
            if size != len(data):
                self.add("artifact_size", f"size column says {size}, data has {len(data)}",
                         artifact_id=aid)
        return ids

    def runs_check(self) -> dict[int, tuple[str, Any, Any, Any]]:
        runs: dict[int, tuple[str, Any, Any, Any]] = {}
        sql = q.RUN_LIST[3 if self.v3 else 2]
        for pk, rid, op_id, status, head, created, updated, stored in self.conn.execute(sql):
            self.counts["runs"] += 1
            runs[pk] = (rid, op_id, status, head)
            try:
                parsed = str(RunId.parse(rid))
            except ValueError:
                parsed = None
            if parsed != rid:
                self.add("run_id", f"run id {rid!r} is not a lowercase hyphenated UUID",
                         run_id=str(rid))
            if self.v3 and cs.run_sum(pk, rid, op_id, status, head, created,
                                      updated) != stored:
                self.add("run_checksum", "run row fails its xxh3 checksum", run_id=str(rid))
        return runs

    def events_check(self, runs: dict[int, tuple[str, Any, Any, Any]], artifact_ids: set[str]
                     ) -> tuple[dict[int, int], dict[int, str], dict[int, str],
                                dict[tuple[int, str], str]]:
        last: dict[int, int] = {}
        op_ids: dict[int, str] = {}
        statuses: dict[int, str] = {}
        first_binding: dict[tuple[int, str], str] = {}
        self.bodies: dict[tuple[int, int], Event] = {}
        for pk, seq, ts, kind, name, stored, body in self.conn.execute(q.VERIFY_EVENTS):
            self.checked()
            self.counts["events"] += 1
            known = runs.get(pk)
            rid = known[0] if known else f"<unknown run_pk {pk}>"
            if known is None and pk not in last:
                self.add("orphan_event", f"events belong to run_pk {pk}, which has no run row")
            if seq != last.get(pk, 0) + 1:
                self.add("seq_gap", f"expected seq {last.get(pk, 0) + 1}", run_id=rid, seq=seq)
            last[pk] = seq
            if not isinstance(body, bytes):
                self.add("event_row", "body is not a blob", run_id=rid, seq=seq)
                continue
            ok = (cs.event_sum(rid, seq, ts, kind, name, body) if self.v3
                  else cs.legacy_event_sum(seq, body)) == stored
            if not ok:
                self.add("event_checksum", "stored row fails its xxh3 checksum",
                         run_id=rid, seq=seq)
                continue
            try:
                event = decode_event(body)
            except Exception as exc:
                self.add("event_decode", f"body cannot be decoded: {exc}", run_id=rid, seq=seq)
                continue
            for ref in _rules.artifact_refs(event):
                if ref not in artifact_ids:
                    self.add("missing_artifact", "referenced artifact missing", run_id=rid,
                             seq=seq, artifact_id=ref)
            op_id = _rules.op_id_of(event)
            if op_id is not None:
                op_ids[pk] = op_id
            status = _rules.status_after(event)
            if status is not None:
                statuses[pk] = status
            binding = _rules.fact_binding_of(event)
            if binding is not None:
                first_binding.setdefault((pk, binding[0]), binding[1])
                self.bodies[(pk, seq)] = event
        return last, op_ids, statuses, first_binding

    def bindings_check(self, runs: dict[int, tuple[str, Any, Any, Any]], artifact_ids: set[str],
                       first_binding: dict[tuple[int, str], str]) -> None:
        bound: set[tuple[int, str]] = set()
        sql = q.VERIFY_BINDINGS[3 if self.v3 else 2]
        for pk, key, pid, seq, stored in self.conn.execute(sql).fetchall():
            self.checked()
            self.counts["bindings"] += 1
            bound.add((pk, key))
            rid = runs[pk][0] if pk in runs else f"<unknown run_pk {pk}>"
            if self.v3 and cs.binding_sum(rid, key, pid, seq) != stored:
                self.add("binding_checksum", f"binding of fact {key!r} fails its xxh3 checksum",
                         run_id=rid, seq=seq)
                continue
            if pid not in artifact_ids:
                self.add("missing_artifact", f"payload of fact {key!r} missing", run_id=rid,
                         seq=seq, artifact_id=pid)
            recorded = self.bodies.get((pk, seq)) if isinstance(seq, int) else None
            if _rules.fact_binding_of(recorded) != (key, pid):
                self.add("binding_event", f"fact {key!r} is not recorded by the event at its "
                                          "seq", run_id=rid, seq=seq)
            elif first_binding.get((pk, key)) != pid:
                self.add("binding_event", f"fact {key!r}: an earlier event binds another "
                                          "payload", run_id=rid, seq=seq)
        for (pk, key), pid in first_binding.items():
            if (pk, key) not in bound:
                rid = runs[pk][0] if pk in runs else f"<unknown run_pk {pk}>"
                self.add("binding_missing", f"fact {key!r} recorded by an event has no binding "
                                            f"row (payload {pid})", run_id=rid)
