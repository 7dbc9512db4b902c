"""``verify`` and ``gc`` scans of the PostgreSQL store: one read-only snapshot each.

The checks and problem kinds are those of the SQLite store's ``verify`` (``sqlite/_verify.py``)
except SQLite's own ``quick_check``; large tables are read through server-side cursors, so
memory stays bounded by the artifact ids and one row at a time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import psycopg

from .. import _checksums as cs
from .._rules import STATUS_RUNNING, artifact_refs, fact_binding_of, op_id_of, status_after
from ..canonical import artifact_id_for_bytes
from ..errors import CorruptionError
from ..events import Event, decode_event
from ..ids import RunId
from ..sqlite import Problem, VerifyReport
from . import _queries as q

Conn = psycopg.AsyncConnection[tuple[Any, ...]]
_TICK = 1000
_SNAPSHOT = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"


async def _rows(conn: Conn, name: str, sql: str) -> AsyncIterator[tuple[Any, ...]]:
    async with conn.cursor(name, binary=True) as cur:
        cur.itersize = 500
        await cur.execute(sql)
        async for row in cur:
            yield row


async def verify_connection(conn: Conn,
                            tick: Callable[[int], None] | None = None) -> VerifyReport:
    """Run every check in one repeatable-read, read-only transaction on ``conn``."""
    async with conn.transaction():
        await conn.execute(_SNAPSHOT)
        return await _verify(conn, tick)


async def _verify(conn: Conn, tick: Callable[[int], None] | None) -> VerifyReport:
    problems: list[Problem] = []
    done = 0

    def checked() -> None:
        nonlocal done
        done += 1
        if tick is not None and done % _TICK == 0:
            tick(_TICK)

    cur = await conn.execute(q.SCHEMA_OBJECTS)
    found = {(kind, name) for kind, name in await cur.fetchall()}
    for kind, name in sorted(q.EXPECTED_OBJECTS - found):
        problems.append(Problem(kind="schema", message=f"{kind} {name} is missing or disabled"))

    artifact_ids: set[str] = set()
    n_artifacts = 0
    async for aid, kind, size, stored_sum, data in _rows(conn, "mfm_verify_artifacts",
                                                          q.VERIFY_ARTIFACTS):
        checked()
        n_artifacts += 1
        artifact_ids.add(aid)
        if cs.artifact_sum(aid, kind, size, data) != stored_sum:
            problems.append(Problem(kind="artifact_checksum", artifact_id=aid,
                                    message="stored bytes fail their xxh3 checksum"))
        if artifact_id_for_bytes(data) != aid:
            problems.append(Problem(kind="artifact_hash", artifact_id=aid,
                                    message="SHA-256 of the bytes is not the artifact id"))
        if size != len(data):
            problems.append(Problem(kind="artifact_size", artifact_id=aid,
                                    message=f"size column says {size}, data has {len(data)}"))

    cur = await conn.execute(q.VERIFY_RUNS)
    runs = {pk: (rid, op_id, status, head)
            for pk, rid, op_id, status, head in await cur.fetchall()}
    for rid, _op, _status, _head in runs.values():
        try:
            parsed = str(RunId.parse(rid))
        except ValueError:
            parsed = None
        if parsed != rid:
            problems.append(Problem(kind="run_id", run_id=str(rid),
                                    message=f"run id {rid!r} is not a lowercase hyphenated UUID"))
    op_ids: dict[int, str] = {}
    statuses: dict[int, str] = {}
    seen: dict[int, int] = {}
    first_binding: dict[tuple[int, str], str] = {}
    n_events = 0
    async for pk, seq, ts, kind, name, stored_sum, body in _rows(conn, "mfm_verify_events",
                                                                  q.VERIFY_EVENTS):
        checked()
        n_events += 1
        known = runs.get(pk)
        rid = known[0] if known else f"<unknown run_pk {pk}>"
        if known is None and pk not in seen:
            problems.append(Problem(kind="orphan_event",
                                    message=f"events belong to run_pk {pk}, which has no run row"))
        last = seen.get(pk, 0)
        if seq != last + 1:
            problems.append(Problem(kind="seq_gap", run_id=rid, seq=seq,
                                    message=f"expected seq {last + 1}"))
        seen[pk] = seq
        if cs.event_sum(rid, seq, ts, kind, name, body) != stored_sum:
            problems.append(Problem(kind="event_checksum", run_id=rid, seq=seq,
                                    message="stored body fails its xxh3 checksum"))
            continue
        try:
            event = decode_event(body)
        except Exception as exc:
            problems.append(Problem(kind="event_decode", run_id=rid, seq=seq,
                                    message=f"body cannot be decoded: {exc}"))
            continue
        for ref in artifact_refs(event):
            if ref not in artifact_ids:
                problems.append(Problem(kind="missing_artifact", run_id=rid, seq=seq,
                                        artifact_id=ref, message="referenced artifact missing"))
        binding = fact_binding_of(event)
        if binding is not None:
            first_binding.setdefault((pk, binding[0]), binding[1])
        op_id = op_id_of(event)
        if op_id is not None:
            op_ids[pk] = op_id
        status = status_after(event)
        if status is not None:
            statuses[pk] = status

    for pk, (rid, op_id, status, head) in runs.items():
        if seen.get(pk, 0) != head:
            problems.append(Problem(kind="head_mismatch", run_id=rid,
                                    message=f"runs.head_seq is {head}, last event is "
                                            f"{seen.get(pk, 0)}"))
        want_status = statuses.get(pk, STATUS_RUNNING)
        if status != want_status:
            problems.append(Problem(kind="run_status", run_id=rid,
                                    message=f"runs.status is {status!r}, its events say "
                                            f"{want_status!r}"))
        if op_id != op_ids.get(pk):
            problems.append(Problem(kind="run_op_id", run_id=rid,
                                    message=f"runs.op_id is {op_id!r}, its RunStarted says "
                                            f"{op_ids.get(pk)!r}"))

    n_bindings = 0
    bound: set[tuple[int, str]] = set()
    cur = await conn.execute(q.VERIFY_BINDINGS)
    for pk, rid, key, pid, seq, stored_sum, payload_exists in await cur.fetchall():
        checked()
        n_bindings += 1
        bound.add((pk, key))
        if cs.binding_sum(rid, key, pid, seq) != stored_sum:
            problems.append(Problem(kind="binding_checksum", run_id=rid, seq=seq,
                                    message=f"fact binding {key!r} fails its checksum"))
        if not payload_exists:
            problems.append(Problem(kind="missing_artifact", run_id=rid, seq=seq,
                                    artifact_id=pid,
                                    message=f"payload of fact {key!r} missing"))
        at = await conn.execute(q.VERIFY_EVENT_AT, (pk, seq), binary=True)
        row = await at.fetchone()
        recorded: Event | None = None
        if row is not None and cs.event_sum(rid, seq, row[0], row[1], row[2], row[4]) == row[3]:
            try:
                recorded = decode_event(row[4])
            except Exception:
                recorded = None
        if fact_binding_of(recorded) != (key, pid):
            problems.append(Problem(kind="binding_event", run_id=rid, seq=seq,
                                    message=f"fact {key!r} is not recorded by the event at "
                                            "its seq"))
        elif first_binding.get((pk, key)) != pid:
            problems.append(Problem(kind="binding_event", run_id=rid, seq=seq,
                                    message=f"fact {key!r}: an earlier event binds another "
                                            "payload"))
    for (pk, key), pid in first_binding.items():
        if (pk, key) not in bound:
            problems.append(Problem(kind="binding_missing", run_id=runs[pk][0] if pk in runs
                                    else "?",
                                    message=f"fact {key!r} recorded by an event has no "
                                            f"binding row (payload {pid})"))
    if tick is not None and done % _TICK:
        tick(done % _TICK)
    return VerifyReport(problems, runs=len(runs), events=n_events, artifacts=n_artifacts,
                        bindings=n_bindings)


async def refs(conn: Conn, events_sql: str, bindings_sql: str,
               params: tuple[Any, ...]) -> set[str]:
    """Artifact ids referenced by the bindings and events the two queries select."""
    cur = await conn.execute(bindings_sql, params)
    referenced = {row[0] for row in await cur.fetchall()}
    async with conn.cursor(binary=True) as ev:
        async for (body,) in ev.stream(events_sql, params):
            try:
                referenced.update(artifact_refs(decode_event(body)))
            except Exception as exc:
                raise CorruptionError(
                    f"an event cannot be decoded ({exc}); run verify before gc") from exc
    return referenced


async def refs_since(conn: Conn, run_pk: int, seq: int) -> set[str]:
    """Artifact ids referenced by run ``run_pk``'s events and bindings after ``seq``."""
    return await refs(conn, q.EVENT_BODIES_AFTER, q.BINDING_PAYLOADS_AFTER, (run_pk, seq))


async def unreferenced(conn: Conn, cutoff: int
                       ) -> tuple[list[tuple[str, int]], dict[int, int]]:
    """One snapshot: unreferenced artifacts older than ``cutoff``, and each run's head."""
    async with conn.transaction():
        await conn.execute(_SNAPSHOT)
        cur = await conn.execute(q.RUN_HEADS)
        heads = {int(pk): int(head) for pk, head in await cur.fetchall()}
        referenced = await refs(conn, q.EVENT_BODIES, q.BINDING_PAYLOADS, ())
        cur = await conn.execute(q.ARTIFACT_META)
        found = [(aid, int(size)) for aid, _kind, size, created in await cur.fetchall()
                 if aid not in referenced and created <= cutoff]
    return found, heads
