"""Whole-file integrity check (SPEC §5.4): every problem is reported, none stops the scan."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from typing import Any

import attrs

from .._rules import fact_binding_of
from ..events import (
    DomainEvent,
    Event,
    RunCompleted,
    RunStarted,
    StateCompleted,
    StateEntered,
    StateFailed,
    decode_event,
)
from . import _queries as q

__all__ = ["Problem", "VerifyReport", "artifact_refs"]


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
    """Result of ``verify()``: ``ok`` is True when ``problems`` is empty."""

    problems: list[Problem]
    runs: int = 0
    events: int = 0
    artifacts: int = 0
    bindings: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def __str__(self) -> str:
        head = (f"checked {self.runs} runs, {self.events} events, {self.bindings} fact "
                f"bindings, {self.artifacts} artifacts: ")
        if self.ok:
            return head + "ok"
        lines = [head + f"{len(self.problems)} problem(s)"]
        lines += [f"  {p}" for p in self.problems]
        return "\n".join(lines)


def artifact_refs(event: Event) -> Iterator[str]:
    """Artifact ids an event refers to (they must exist in the store)."""
    if isinstance(event, RunStarted):
        yield event.manifest_id
        yield event.initial_snapshot_id
    elif isinstance(event, StateEntered):
        yield event.base_snapshot_id
    elif isinstance(event, StateCompleted):
        yield event.context_snapshot_id
    elif isinstance(event, StateFailed | RunCompleted):
        ref = event.failure_snapshot_id if isinstance(event, StateFailed) \
            else event.final_snapshot_id
        if ref is not None:
            yield ref
    elif isinstance(event, DomainEvent) and event.payload_ref is not None:
        yield event.payload_ref


_TICK = 1000


def verify_connection(conn: Any, checksum: Any,
                      tick: Callable[[int], None] | None = None) -> VerifyReport:
    """Run every check on an autocommit sqlite3 connection (in a worker thread), all in one
    read transaction: on a live file, writes made meanwhile are not seen half-way.

    ``tick(n)`` is called as rows are checked (artifacts, events, bindings; ``n`` at a time).
    """
    conn.execute("BEGIN")
    try:
        return _verify(conn, checksum, tick)
    finally:
        conn.execute("COMMIT")


def _verify(conn: Any, checksum: Any, tick: Callable[[int], None] | None) -> VerifyReport:
    problems: list[Problem] = []
    done = 0

    def checked() -> None:
        nonlocal done
        done += 1
        if tick is not None and done % _TICK == 0:
            tick(_TICK)

    quick = [row[0] for row in conn.execute(q.QUICK_CHECK).fetchall()]
    if quick != ["ok"]:
        problems += [Problem(kind="sqlite", message=str(m)) for m in quick]

    artifact_ids: set[str] = set()
    n_artifacts = 0
    for aid, size, stored_sum, data in conn.execute(q.VERIFY_ARTIFACTS):
        checked()
        n_artifacts += 1
        artifact_ids.add(aid)
        if checksum(data) != stored_sum:
            problems.append(Problem(kind="artifact_checksum", artifact_id=aid,
                                    message="stored bytes fail their xxh3 checksum"))
        if hashlib.sha256(data).hexdigest() != aid:
            problems.append(Problem(kind="artifact_hash", artifact_id=aid,
                                    message="SHA-256 of the bytes is not the artifact id"))
        if size != len(data):
            problems.append(Problem(kind="artifact_size", artifact_id=aid,
                                    message=f"size column says {size}, data has {len(data)}"))

    runs = {pk: (rid, head) for pk, rid, head in conn.execute(q.VERIFY_RUNS)}
    seen: dict[int, int] = {}
    first_binding: dict[tuple[int, str], str] = {}
    n_events = 0
    for pk, seq, stored_sum, body in conn.execute(q.VERIFY_EVENTS):
        checked()
        n_events += 1
        rid = runs.get(pk, (f"<unknown run_pk {pk}>", 0))[0]
        last = seen.get(pk, 0)
        if seq != last + 1:
            problems.append(Problem(kind="seq_gap", run_id=rid, seq=seq,
                                    message=f"expected seq {last + 1}"))
        seen[pk] = seq
        if checksum(body, seq) != stored_sum:
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

    for pk, (rid, head) in runs.items():
        if seen.get(pk, 0) != head:
            problems.append(Problem(kind="head_mismatch", run_id=rid,
                                    message=f"runs.head_seq is {head}, last event is "
                                            f"{seen.get(pk, 0)}"))

    n_bindings = 0
    bound: set[tuple[int, str]] = set()
    for pk, rid, key, pid, seq, payload_exists in conn.execute(q.VERIFY_BINDINGS).fetchall():
        checked()
        n_bindings += 1
        bound.add((pk, key))
        if not payload_exists:
            problems.append(Problem(kind="missing_artifact", run_id=rid, seq=seq,
                                    artifact_id=pid,
                                    message=f"payload of fact {key!r} missing"))
        row = conn.execute(q.VERIFY_EVENT_AT, (pk, seq)).fetchone()
        recorded: Event | None = None
        if row is not None and checksum(row[1], seq) == row[0]:
            try:
                recorded = decode_event(row[1])
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
            problems.append(Problem(kind="binding_missing", run_id=runs.get(pk, ("?", 0))[0],
                                    message=f"fact {key!r} recorded by an event has no "
                                            f"binding row (payload {pid})"))
    if tick is not None and done % _TICK:
        tick(done % _TICK)
    return VerifyReport(problems, runs=len(runs), events=n_events, artifacts=n_artifacts,
                        bindings=n_bindings)
