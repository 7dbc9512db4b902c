"""What the pages show, computed from a run's events: attempts, facts, reuse, diffs.

Pure functions over :class:`~mfm_store.events.EventEnvelope` lists and decoded JSON; no store
access and no HTML here, so the rules are tested without a server.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import attrs

from ..engine.manifest import FixedBackoff, RetryPolicy
from ..errors import ErrorInfo
from ..events import (
    DOMAIN_FACT_RECORDED,
    DomainEvent,
    EventEnvelope,
    RunCompleted,
    RunStarted,
    StateCompleted,
    StateEntered,
    StateFailed,
)

__all__ = [
    "Attempt",
    "Change",
    "DomainRow",
    "FactRow",
    "RunBuilder",
    "RunModel",
    "build_run",
    "describe_backoff",
    "describe_policy",
    "json_diff",
    "pretty_json",
]

# Time and random facts carry their attempt in the key, so a retry draws them anew.
_PER_ATTEMPT_KEY = re.compile(r"^mfm:[a-z_]+\|run:[^|]*\|state:[^|]*\|attempt:(\d+)\|ord:\d+$")
_VALUE_LIMIT = 2000


def pretty_json(value: Any) -> str:
    """Indented JSON for people (keys in stored order, non-ASCII kept)."""
    return json.dumps(value, ensure_ascii=False, indent=2)


def _compact(value: Any, limit: int = _VALUE_LIMIT) -> str:
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text if len(text) <= limit else text[:limit - 1] + "…"


@attrs.define
class FactRow:
    """A fact binding seen in an attempt: recorded there, or reused from an earlier attempt."""

    seq: int
    key: str
    payload_id: str
    reused_from_attempt: int | None = None


@attrs.define
class DomainRow:
    """A domain event other than ``fact_recorded``."""

    seq: int
    name: str
    payload: str
    payload_ref: str | None


@attrs.define
class Attempt:
    """One attempt of one state, or (``state_id`` None) events outside any attempt.

    ``outcome``: ``completed``, ``failed``, ``crashed`` (no end recorded, and the run went on),
    ``open`` (no end recorded yet: running, or interrupted and not resumed) or ``events``
    (a group of events outside any attempt).
    """

    state_id: str | None
    attempt: int
    first_seq: int
    last_seq: int
    base_snapshot_id: str | None = None
    items: list[FactRow | DomainRow] = attrs.Factory(list)
    reused: list[FactRow] = attrs.Factory(list)
    outcome: str = "open"
    snapshot_id: str | None = None
    error: ErrorInfo | None = None
    retry_of: str | None = None
    previous_attempt: int | None = None
    entered_ms: int | None = None
    ended_ms: int | None = None

    @property
    def facts(self) -> list[FactRow]:
        return [i for i in self.items if isinstance(i, FactRow)]

    @property
    def events(self) -> list[DomainRow]:
        return [i for i in self.items if isinstance(i, DomainRow)]


@attrs.define
class RunModel:
    """A run as the run page shows it."""

    run_id: str
    head_seq: int
    op_id: str | None = None
    status: str = "running"
    manifest_id: str | None = None
    initial_snapshot_id: str | None = None
    final_snapshot_id: str | None = None
    completed_seq: int | None = None
    attempts: list[Attempt] = attrs.Factory(list)

    @property
    def states(self) -> int:
        return len({a.state_id for a in self.attempts if a.state_id is not None})

    def count(self, outcome: str) -> int:
        return sum(1 for a in self.attempts if a.outcome == outcome)

    @property
    def real_attempts(self) -> int:
        return sum(1 for a in self.attempts if a.state_id is not None)

    @property
    def fact_count(self) -> int:
        return sum(len(a.facts) for a in self.attempts)

    @property
    def reused_count(self) -> int:
        return sum(len(a.reused) for a in self.attempts)

    @property
    def domain_count(self) -> int:
        return sum(len(a.events) for a in self.attempts)


def describe_policy(policy: RetryPolicy) -> str:
    """``at most 3 attempts, fixed backoff 0.5 s`` (exponential: base and cap)."""
    backoff = policy.backoff
    if isinstance(backoff, FixedBackoff):
        how = f"fixed backoff {backoff.delay.total_seconds():g} s"
    else:
        how = (f"exponential backoff from {backoff.base_delay.total_seconds():g} s "
               f"up to {backoff.max_delay.total_seconds():g} s")
    return f"at most {policy.max_attempts} attempts, {how}"


def describe_backoff(policy: RetryPolicy | None, failed_attempt: int) -> str | None:
    """The wait the policy prescribes after ``failed_attempt`` failed, readably."""
    if policy is None:
        return None
    delay = policy.backoff.delay_for(failed_attempt).total_seconds()
    kind = type(policy.backoff).__name__.removesuffix("Backoff").lower()
    return f"{delay:g} s ({kind} backoff, at most {policy.max_attempts} attempts)"


def _fact_payload(event: DomainEvent) -> tuple[str, str] | None:
    p = event.payload
    if isinstance(p, dict) and isinstance(p.get("key"), str) and isinstance(
            p.get("payload_id"), str):
        return p["key"], p["payload_id"]
    return None


def _carried(key: str, attempt: int) -> bool:
    """Whether a fact bound in an earlier attempt serves ``attempt`` of the same state."""
    m = _PER_ATTEMPT_KEY.match(key)
    return m is None or int(m.group(1)) == attempt


class RunBuilder:
    """Groups a run's events into attempts, fed in seq order, a page of events at a time.

    An attempt starts at ``StateEntered`` and ends at its ``StateCompleted``/``StateFailed``;
    one followed by anything else than its end is ``crashed``. A retry of a state lists as
    ``reused`` the facts its earlier attempts bound (except per-attempt time and random
    facts): a call with such a key is answered from the file, not by the transport. Events
    are append-only, so a builder is extended, never rebuilt, as a run grows.
    """

    def __init__(self, run_id: str) -> None:
        self.model = RunModel(run_id=run_id, head_seq=0)
        self._current: Attempt | None = None  # the attempt whose end is not seen yet
        self._loose: Attempt | None = None  # events outside any attempt, while contiguous
        self._earlier: dict[str, list[Attempt]] = {}

    def _close_open(self) -> None:
        if self._current is not None:
            self._current.outcome = "crashed"
            self._current = None

    def _group(self, seq: int) -> Attempt:
        if self._current is not None:
            return self._current
        if self._loose is None:
            self._loose = Attempt(None, 0, seq, seq, outcome="events")
            self.model.attempts.append(self._loose)
        return self._loose

    def feed(self, env: EventEnvelope) -> None:
        """Add the next event (its seq must follow the last one fed)."""
        model, ev = self.model, env.event
        model.head_seq = env.seq
        if isinstance(ev, DomainEvent):
            group = self._group(env.seq)
            group.last_seq = env.seq
            bound = _fact_payload(ev) if ev.name == DOMAIN_FACT_RECORDED else None
            if bound is not None:
                group.items.append(FactRow(env.seq, bound[0], bound[1]))
            else:
                group.items.append(DomainRow(env.seq, ev.name, _compact(ev.payload),
                                              ev.payload_ref))
        elif isinstance(ev, StateEntered):
            self._enter(env.seq, env.ts_millis, ev)
        elif isinstance(ev, StateCompleted | StateFailed):
            if self._current is None or self._current.state_id != ev.state_id:
                self._close_open()
            target = self._group(env.seq)
            target.last_seq = env.seq
            target.ended_ms = env.ts_millis
            if isinstance(ev, StateCompleted):
                target.snapshot_id = ev.context_snapshot_id
                if target.state_id is not None:
                    target.outcome = "completed"
            else:
                target.snapshot_id = ev.failure_snapshot_id
                target.error = ev.error.info
                if target.state_id is not None:
                    target.outcome = "failed"
            if target is self._current:
                self._current = None
        elif isinstance(ev, RunStarted):
            model.op_id = ev.op_id
            model.manifest_id = ev.manifest_id
            model.initial_snapshot_id = ev.initial_snapshot_id
        elif isinstance(ev, RunCompleted):
            self._close_open()
            self._loose = None
            model.status = ev.status.value.lower()
            model.final_snapshot_id = ev.final_snapshot_id
            model.completed_seq = env.seq

    def _enter(self, seq: int, ts: int | None, ev: StateEntered) -> None:
        self._close_open()
        self._loose = None
        before = self._earlier.setdefault(ev.state_id, [])
        current = Attempt(ev.state_id, ev.attempt, seq, seq,
                          base_snapshot_id=ev.base_snapshot_id, entered_ms=ts)
        if before:
            prev = before[-1]
            current.previous_attempt = prev.attempt
            current.retry_of = prev.outcome
            seen: set[str] = set()
            for old in before:
                for fact in old.facts:
                    if fact.key not in seen and _carried(fact.key, ev.attempt):
                        seen.add(fact.key)
                        current.reused.append(FactRow(fact.seq, fact.key, fact.payload_id,
                                                      reused_from_attempt=old.attempt))
        before.append(current)
        self.model.attempts.append(current)
        self._current = current


def build_run(run_id: str, envelopes: Sequence[EventEnvelope]) -> RunModel:
    """The model of a whole run (see :class:`RunBuilder`)."""
    builder = RunBuilder(run_id)
    for env in envelopes:
        builder.feed(env)
    return builder.model


@attrs.frozen
class Change:
    """One difference between two JSON values: ``op`` is ``added``, ``removed``, ``changed``."""

    path: str
    op: str
    old: str | None
    new: str | None


def _step(path: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    plain = isinstance(key, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key) is not None
    name = key if plain else json.dumps(key, ensure_ascii=False)
    return f"{path}.{name}" if path else name


def json_diff(old: Any, new: Any, path: str = "") -> list[Change]:
    """Leaf-level differences from ``old`` to ``new`` (objects by key, arrays by index)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[Change] = []
        for key in sorted(set(old) | set(new)):
            where = _step(path, key)
            if key not in old:
                out.append(Change(where, "added", None, _compact(new[key])))
            elif key not in new:
                out.append(Change(where, "removed", _compact(old[key]), None))
            else:
                out.extend(json_diff(old[key], new[key], where))
        return out
    if isinstance(old, list) and isinstance(new, list):
        out = []
        for i in range(max(len(old), len(new))):
            where = _step(path, i)
            if i >= len(old):
                out.append(Change(where, "added", None, _compact(new[i])))
            elif i >= len(new):
                out.append(Change(where, "removed", _compact(old[i]), None))
            else:
                out.extend(json_diff(old[i], new[i], where))
        return out
    if old == new and type(old) is type(new):
        return []
    return [Change(path or "(whole value)", "changed", _compact(old), _compact(new))]
