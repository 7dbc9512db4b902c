"""The steps of ``verify()`` (see :mod:`._verify`), each a pass over one table.

Memory stays bounded whatever the file's size: rows are streamed from one cursor per pass and
nothing that grows with events, artifacts or runs is kept in Python. What one pass learns for
another goes to TEMP tables (on disk: ``temp_store = FILE``) and the cross-checks are joins:

- artifacts: every row's checksum, SHA-256 and size;
- events, one cursor in storage order: every row's checksum, its body decoded once; the
  artifacts it names are looked up a batch at a time; ``RunStarted``/``RunCompleted`` and
  ``fact_recorded`` events are noted in ``temp.verify_marks`` and ``temp.verify_facts``;
- runs: every row's checksum and id, merged (by ``run_pk``) with each run's count, first and
  last seq (from the events' primary-key index) and the op id and status its events set;
- bindings: every row's checksum, joined with its payload artifact, the ``fact_recorded``
  event at its seq and the first such event of its key; then the events without a binding.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .. import _rules
from ..canonical import content_id
from ..events import DOMAIN_FACT_RECORDED, DomainEvent, RunCompleted, RunStarted, decode_event
from ..ids import RunId
from . import _checksums as cs
from . import _queries as q
from ._schema import expected_objects, schema_objects

if TYPE_CHECKING:
    from ._verify import Verifier

__all__ = ["DEPENDS", "STEPS", "TEMP_STORE"]

_REF_BATCH = 2000  # events whose references are looked up in one query

TEMP_STORE = "PRAGMA temp_store = FILE"
TEMP_TABLES = (
    "DROP TABLE IF EXISTS temp.verify_marks",
    "DROP TABLE IF EXISTS temp.verify_facts",
    "CREATE TEMP TABLE verify_marks (run_pk INTEGER, seq INTEGER, op_id TEXT, status TEXT)",
    "CREATE TEMP TABLE verify_facts"
    " (run_pk INTEGER, seq INTEGER, fact_key TEXT, payload_id TEXT)",
)
TEMP_INDEXES = (
    "CREATE INDEX temp.verify_marks_run ON verify_marks (run_pk, seq)",
    "CREATE INDEX temp.verify_facts_seq ON verify_facts (run_pk, seq)",
    "CREATE INDEX temp.verify_facts_key ON verify_facts (run_pk, fact_key, seq)",
)
MARK_INSERT = "INSERT INTO temp.verify_marks VALUES (?, ?, ?, ?)"
FACT_INSERT = "INSERT INTO temp.verify_facts VALUES (?, ?, ?, ?)"
# Storage order (a sequential read of the table); the run's id comes from its row.
EVENTS = (
    "SELECT e.run_pk, r.run_id, e.seq, e.ts_millis, e.kind, e.name, e.checksum, e.body"
    " FROM events AS e LEFT JOIN runs AS r ON r.run_pk = e.run_pk"
)
MISSING_REFS = (
    "SELECT j.value FROM json_each(?) AS j"
    " WHERE NOT EXISTS (SELECT 1 FROM artifacts AS a WHERE a.id = j.value)"
)
# One row per run that has events, in run_pk order, from the primary-key index alone.
SEQ_SPANS = (
    "SELECT run_pk, count(*), min(seq), max(seq) FROM events GROUP BY run_pk ORDER BY run_pk"
)
SEQ_GAPS = (
    "SELECT seq, prev FROM (SELECT seq, lag(seq, 1, 0) OVER (ORDER BY seq) AS prev"
    " FROM events WHERE run_pk = ?) WHERE seq != prev + 1"
)
_LAST_MARK = (
    "(SELECT m.{0} FROM temp.verify_marks AS m WHERE m.run_pk = r.run_pk"
    " AND m.{0} IS NOT NULL ORDER BY m.seq DESC LIMIT 1)"
)
RUNS = {
    layout: "SELECT r.run_pk, r.run_id, r.op_id, r.status, r.head_seq, r.created_ms,"
            f" r.updated_ms, {checksum}, {_LAST_MARK.format('op_id')},"
            f" {_LAST_MARK.format('status')} FROM runs AS r ORDER BY r.run_pk"
    for layout, checksum in ((3, "r.checksum"), (2, "NULL"))
}
BINDINGS = {
    layout: "SELECT b.run_pk, r.run_id, b.fact_key, b.payload_id, b.seq, " + checksum + ","
            " EXISTS (SELECT 1 FROM artifacts AS a WHERE a.id = b.payload_id),"
            " EXISTS (SELECT 1 FROM temp.verify_facts AS f WHERE f.run_pk = b.run_pk"
            " AND f.seq = b.seq AND f.fact_key = b.fact_key AND f.payload_id = b.payload_id),"
            " (SELECT f.payload_id FROM temp.verify_facts AS f WHERE f.run_pk = b.run_pk"
            " AND f.fact_key = b.fact_key ORDER BY f.seq LIMIT 1)"
            " FROM fact_bindings AS b LEFT JOIN runs AS r ON r.run_pk = b.run_pk"
    for layout, checksum in ((3, "b.checksum"), (2, "NULL"))
}
# The first fact_recorded event of each key that has no binding row.
UNBOUND_FACTS = (
    "SELECT f.run_pk, r.run_id, f.fact_key, f.payload_id FROM temp.verify_facts AS f"
    " LEFT JOIN runs AS r ON r.run_pk = f.run_pk"
    " WHERE f.seq = (SELECT min(g.seq) FROM temp.verify_facts AS g"
    " WHERE g.run_pk = f.run_pk AND g.fact_key = f.fact_key)"
    " AND NOT EXISTS (SELECT 1 FROM fact_bindings AS b"
    " WHERE b.run_pk = f.run_pk AND b.fact_key = f.fact_key)"
)


def _unknown(pk: Any) -> str:
    return f"<unknown run_pk {pk}>"


def sqlite_check(v: Verifier) -> None:
    """SQLite's own structure: ``PRAGMA integrity_check`` (or ``quick_check``)."""
    found = [row[0] for row in v.conn.execute(
        q.QUICK_CHECK if v.quick else q.INTEGRITY_CHECK).fetchall()]
    if found != ["ok"]:
        for message in found:
            v.add("sqlite", str(message))


def schema_check(v: Verifier) -> None:
    """The schema objects against those of the file's version."""
    expected = {(t, n): (tbl, sql) for t, n, tbl, sql in expected_objects(v.version)}
    found = {(t, n): (tbl, sql) for t, n, tbl, sql in schema_objects(v.conn)}
    for key in sorted(expected.keys() | found.keys()):
        kind, name = key
        if key not in found:
            v.add("schema", f"{kind} {name} is missing")
        elif key not in expected:
            v.add("schema", f"{kind} {name} is not part of schema version {v.version}")
        elif found[key] != expected[key]:
            v.add("schema", f"{kind} {name} differs from schema version {v.version}")


def artifacts_check(v: Verifier) -> None:
    """Every artifact row: checksum, SHA-256 of the bytes against the id, size."""
    v3, add = v.v3, v.add
    for aid, kind, size, stored, data in v.conn.execute(q.VERIFY_ARTIFACTS):
        v.checked()
        v.counts["artifacts"] += 1
        if not isinstance(data, bytes) or not isinstance(aid, str):
            add("artifact_row", "row has the wrong column types", artifact_id=str(aid))
            continue
        ok = (cs.artifact_sum(aid, kind, size, data) if v3
              else cs.legacy_artifact_sum(data)) == stored
        if not ok:
            add("artifact_checksum", "stored row fails its xxh3 checksum", artifact_id=aid)
        if content_id(data) != aid:
            add("artifact_hash", "SHA-256 of the bytes is not the artifact id",
                artifact_id=aid)
        if size != len(data):
            add("artifact_size", f"size column says {size}, data has {len(data)}",
                artifact_id=aid)


def events_check(v: Verifier) -> None:
    """Every event row, in storage order: checksum, body decoded, the artifacts it names; the
    events that set a run's op id or status, and the fact bindings, noted for later steps."""
    conn, v3, add = v.conn, v.v3, v.add
    for statement in TEMP_TABLES:
        conn.execute(statement)
    refs: list[tuple[str, int, str]] = []
    marks: list[tuple[int, int, str | None, str | None]] = []
    facts: list[tuple[int, int, str, str]] = []
    event_sum, legacy_sum, artifact_refs = cs.event_sum, cs.legacy_event_sum, _rules.artifact_refs
    binding_of = _rules.fact_binding_of
    n = 0
    for pk, rid, seq, ts, kind, name, stored, body in conn.execute(EVENTS):
        n += 1
        if rid is None:
            rid = _unknown(pk)
        if not isinstance(body, bytes):
            add("event_row", "body is not a blob", run_id=rid, seq=seq)
            continue
        if (event_sum(rid, seq, ts, kind, name, body) if v3
                else legacy_sum(seq, body)) != stored:
            add("event_checksum", "stored row fails its xxh3 checksum", run_id=rid, seq=seq)
            continue
        try:
            event = decode_event(body)
        except Exception as exc:
            add("event_decode", f"body cannot be decoded: {exc}", run_id=rid, seq=seq)
            continue
        for ref in artifact_refs(event):
            refs.append((rid, seq, ref))
        if type(event) is DomainEvent:
            if event.name == DOMAIN_FACT_RECORDED:
                binding = binding_of(event)
                if binding is not None:
                    facts.append((pk, seq, binding[0], binding[1]))
        elif type(event) is RunStarted:
            marks.append((pk, seq, event.op_id, None))
        elif type(event) is RunCompleted:
            marks.append((pk, seq, None, _rules.status_after(event)))
        if n >= _REF_BATCH:
            _flush(v, n, refs, marks, facts)
            n = 0
    _flush(v, n, refs, marks, facts)
    for statement in TEMP_INDEXES:
        conn.execute(statement)


def _flush(v: Verifier, n: int, refs: list[tuple[str, int, str]],
           marks: list[tuple[int, int, str | None, str | None]],
           facts: list[tuple[int, int, str, str]]) -> None:
    """Report the batch's references to missing artifacts; write its notes; count it."""
    v.checked(n)
    v.counts["events"] += n
    if refs:
        wanted = json.dumps(sorted({ref for _, _, ref in refs}))
        missing = {row[0] for row in v.conn.execute(MISSING_REFS, (wanted,))}
        if missing:
            for rid, seq, ref in refs:
                if ref in missing:
                    v.add("missing_artifact", "referenced artifact missing", run_id=rid,
                          seq=seq, artifact_id=ref)
        refs.clear()
    if marks:
        v.conn.executemany(MARK_INSERT, marks)
        marks.clear()
    if facts:
        v.conn.executemany(FACT_INSERT, facts)
        facts.clear()


def _spans(v: Verifier) -> Iterator[tuple[int, int, int, int]]:
    yield from v.conn.execute(SEQ_SPANS)


def runs_check(v: Verifier) -> None:
    """Every run row (checksum, id) against its events: contiguous seqs from 1, head, op id,
    status; and events whose run has no row."""
    spans = _spans(v)
    span = next(spans, None)
    for (pk, rid, op_id, status, head, created, updated, stored, event_op,
         event_status) in v.conn.execute(RUNS[3 if v.v3 else 2]):
        v.counts["runs"] += 1
        while span is not None and span[0] < pk:
            _orphan(v, span)
            span = next(spans, None)
        last = 0
        if span is not None and span[0] == pk:
            _seqs(v, span, rid)
            last = span[3]
            span = next(spans, None)
        try:
            parsed = str(RunId.parse(rid))
        except ValueError:
            parsed = None
        if parsed != rid:
            v.add("run_id", f"run id {rid!r} is not a lowercase hyphenated UUID",
                  run_id=str(rid))
        if v.v3 and cs.run_sum(pk, rid, op_id, status, head, created, updated) != stored:
            v.add("run_checksum", "run row fails its xxh3 checksum", run_id=str(rid))
        if last != head:
            v.add("head_mismatch", f"runs.head_seq is {head}, last event is {last}",
                  run_id=rid)
        want_status = event_status or _rules.STATUS_RUNNING
        if status != want_status:
            v.add("run_status", f"runs.status is {status!r}, its events say "
                                f"{want_status!r}", run_id=rid)
        if op_id != event_op:
            v.add("run_op_id", f"runs.op_id is {op_id!r}, its RunStarted says {event_op!r}",
                  run_id=rid)
    while span is not None:
        _orphan(v, span)
        span = next(spans, None)


def _orphan(v: Verifier, span: tuple[int, int, int, int]) -> None:
    v.add("orphan_event", f"events belong to run_pk {span[0]}, which has no run row")
    _seqs(v, span, _unknown(span[0]))


def _seqs(v: Verifier, span: tuple[int, int, int, int], rid: str) -> None:
    """Seqs 1..last with none missing (the primary key makes them unique): else each gap."""
    pk, count, first, last = span
    if first == 1 and last == count:
        return
    for seq, prev in v.conn.execute(SEQ_GAPS, (pk,)):
        v.add("seq_gap", f"expected seq {prev + 1}", run_id=rid, seq=seq)


def bindings_check(v: Verifier) -> None:
    """Every binding row: checksum, payload present, recorded by the ``fact_recorded``
    event at its seq, no earlier event binding its key to another payload; then every
    first binding event of a key without a binding row."""
    v3 = v.v3
    for pk, rid, key, pid, seq, stored, present, recorded, first in v.conn.execute(
            BINDINGS[3 if v3 else 2]):
        v.checked()
        v.counts["bindings"] += 1
        if rid is None:
            rid = _unknown(pk)
        if v3 and cs.binding_sum(rid, key, pid, seq) != stored:
            v.add("binding_checksum", f"binding of fact {key!r} fails its xxh3 checksum",
                  run_id=rid, seq=seq)
            continue
        if not present:
            v.add("missing_artifact", f"payload of fact {key!r} missing", run_id=rid,
                  seq=seq, artifact_id=pid)
        if not recorded or not isinstance(seq, int):
            v.add("binding_event", f"fact {key!r} is not recorded by the event at its seq",
                  run_id=rid, seq=seq)
        elif first != pid:
            v.add("binding_event", f"fact {key!r}: an earlier event binds another payload",
                  run_id=rid, seq=seq)
    for pk, rid, key, pid in v.conn.execute(UNBOUND_FACTS):
        v.add("binding_missing", f"fact {key!r} recorded by an event has no binding row "
                                 f"(payload {pid})", run_id=rid if rid is not None
              else _unknown(pk))


STEPS = (sqlite_check, schema_check, artifacts_check, events_check, runs_check,
         bindings_check)
# Steps skipped when a step they cross-check against stopped before reading all its rows.
DEPENDS = {"runs_check": {"events_check"}, "bindings_check": {"events_check"}}
