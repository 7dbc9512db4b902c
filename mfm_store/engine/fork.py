"""Fork a run from a decided state: run it again from state N, re-using what was observed.

``await fork(store, run_id, at_state=N, plan=fixed_plan)`` creates a new run whose history is
the source run's events up to the last decided state before ``N`` (its ``StateCompleted``; the
``RunStarted`` alone when ``N`` is the first state), then ``await resume(store, new_run_id,
fixed_plan, transports=...)`` runs it live from ``N``. The source run is only read.

The new run's stream, written in one ``append`` (a fork exists whole or not at all)::

    seq 1       RunStarted                  (the source's: same manifest, same initial context)
    seq 2       run_forked {"source_run_id", "source_seq", "state_id", "reuse_facts"}
    seq 3 ..    the source's events 2 .. source_seq, under the new run id
    then        with reuse_facts="all": the source's later explicit-key fact_recorded events

So source seq ``n`` (``2 <= n <= source_seq``) is fork seq ``n + 1``, and the event right after
``RunStarted`` names the run's origin (:func:`fork_origin` reads only that far). A fork of a
fork inherits its source's ``run_forked`` event too: the chain of them is the run's ancestry.

Facts. The inherited ``fact_recorded`` events bind, in the new run, every fact recorded before
the fork point to the same payload (the transport is not asked for them again). Time and random
facts are keyed by run id (``mfm:{kind}|run:{run_id}|...``): those of the source run are
rebound under the new run's id, so that a replay of the fork resolves them. Facts recorded in
``N`` and after are not carried over, unless ``reuse_facts="all"``: then every explicit-key
fact of the source is bound in the new run (a fixed handler asking the same questions gets the
same answers); time and random facts of ``N`` and after are always drawn anew.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from typing import Literal, Protocol, runtime_checkable

import attrs

from .. import _rules
from .._io_common import KIND_NOW_MILLIS, KIND_RANDOM_BYTES
from .._rules import CheckedBytes
from ..errors import (
    CODE_CONCURRENCY,
    CODE_FORK_STATE_NOT_NEXT,
    CODE_FORK_STATE_NOT_REACHED,
    CODE_INVALID_ARGUMENT,
    CODE_READ_ONLY,
    ConcurrencyError,
    CorruptionError,
    NotFoundError,
    RunNotFoundError,
    StorageError,
)
from ..events import (
    DomainEvent,
    Event,
    EventEnvelope,
    RunCompleted,
    RunStarted,
    StateCompleted,
    StateEntered,
    StateFailed,
)
from ..ids import ArtifactId, RunId, StateId
from ..stores import ArtifactKind, ArtifactStore, Store
from .errors import (
    CODE_RECOVERY_STATE_NOT_IN_PLAN,
    CODE_RUN_ALREADY_EXISTS,
    InvalidPlanError,
    RunError,
)
from .history import analyze_history
from .manifest import load_manifest
from .plan import ExecutionPlan
from .runner import check_resumable

__all__ = [
    "CODE_FORK_STATE_NOT_NEXT",
    "CODE_FORK_STATE_NOT_REACHED",
    "DOMAIN_RUN_FORKED",
    "ForkOrigin",
    "ForkResult",
    "ReuseFacts",
    "fork",
    "fork_origin",
]

DOMAIN_RUN_FORKED = "run_forked"
# fork_state_not_reached: the run never entered the state asked for (no decided state before
# it to fork at); fork_state_not_next: the plan would run another state before the fork state.

ReuseFacts = Literal["before", "all"]
_DERIVED_KINDS = (KIND_NOW_MILLIS, KIND_RANDOM_BYTES)
_PUT_BATCH = 256


@attrs.frozen(kw_only=True)
class ForkResult:
    """The new run, ready for :func:`~mfm_store.engine.resume`.

    ``source_seq`` is the source's last carried-over seq (the ``StateCompleted`` of the last
    state decided before ``state_id``, or ``RunStarted``); ``events_copied`` counts the
    inherited events (``RunStarted`` included); ``facts_rebound`` the time and random facts
    rebound under the new run id; ``facts_reused`` the later explicit-key facts bound with
    ``reuse_facts="all"``; ``artifacts_copied`` the artifacts put into the target from another
    ``source``.
    """

    run_id: RunId
    source_run_id: RunId
    source_seq: int
    state_id: StateId
    head_seq: int
    events_copied: int
    facts_rebound: int
    facts_reused: int
    artifacts_copied: int


@attrs.frozen(kw_only=True)
class ForkOrigin:
    """Where a forked run came from: the payload of its ``run_forked`` event."""

    source_run_id: RunId
    source_seq: int
    state_id: StateId
    reuse_facts: str

    def to_json(self) -> dict[str, object]:
        return {"source_run_id": str(self.source_run_id), "source_seq": self.source_seq,
                "state_id": str(self.state_id), "reuse_facts": self.reuse_facts}

    @classmethod
    def from_event(cls, event: object) -> ForkOrigin | None:
        """The origin a ``run_forked`` domain event records; ``None`` for any other event
        (or a malformed one)."""
        if not isinstance(event, DomainEvent) or event.name != DOMAIN_RUN_FORKED:
            return None
        p = event.payload
        if not isinstance(p, dict):
            return None
        seq, reuse = p.get("source_seq"), p.get("reuse_facts")
        if isinstance(seq, bool) or not isinstance(seq, int) or not isinstance(reuse, str):
            return None
        try:
            return cls(source_run_id=RunId.parse(p["source_run_id"]), source_seq=seq,
                       state_id=StateId(p["state_id"]), reuse_facts=reuse)
        except (KeyError, TypeError, ValueError):
            return None


async def fork_origin(store: Store, run_id: RunId) -> ForkOrigin | None:
    """The origin of ``run_id`` if it was made by :func:`fork`, else ``None``.

    Reads the run's events only up to the one after ``RunStarted`` (seq 2 in a fork).
    """
    head = await store.read_range(run_id, 1, 2)
    if head and isinstance(head[0].event, RunStarted):
        return ForkOrigin.from_event(head[1].event) if len(head) == 2 else None
    # RunStarted after other events (a stream imported from elsewhere): look further.
    started, seq = False, 1
    while page := await store.read_range(run_id, seq, seq + 15):
        for env in page:
            if started:
                return ForkOrigin.from_event(env.event)
            started = isinstance(env.event, RunStarted)
        seq = page[-1].seq + 1
    return None


@runtime_checkable
class _ListsArtifacts(Protocol):
    def iter_artifacts(self, ids: Iterable[str] | None = None
                       ) -> AsyncIterator[tuple[ArtifactId, ArtifactKind, bytes]]: ...


def _derived_prefixes(run_id: RunId) -> tuple[str, ...]:
    return tuple(f"mfm:{kind}|run:{run_id}|" for kind in _DERIVED_KINDS)


def _is_derived(key: str) -> bool:
    return key.startswith(tuple(f"mfm:{kind}|" for kind in _DERIVED_KINDS))


def _rebound(event: Event, old: tuple[str, ...], new: tuple[str, ...]) -> Event | None:
    """``event`` with its time/random fact key moved to the new run id; ``None`` if it is not
    such a ``fact_recorded`` event of the source run."""
    binding = _rules.fact_binding_of(event)
    if binding is None:
        return None
    assert isinstance(event, DomainEvent)
    key = binding[0]
    for prefix_old, prefix_new in zip(old, new, strict=True):
        if key.startswith(prefix_old):
            payload = dict(event.payload)
            payload["key"] = prefix_new + key[len(prefix_old):]
            return DomainEvent(event.name, payload, event.payload_ref)
    return None


def _kinds(event: Event) -> Iterator[tuple[str, ArtifactKind]]:
    """The artifacts ``event`` names, with the kind their role implies."""
    snap = ArtifactKind.CONTEXT_SNAPSHOT
    if isinstance(event, RunStarted):
        yield event.manifest_id, ArtifactKind.MANIFEST
        yield event.initial_snapshot_id, snap
    elif isinstance(event, StateEntered):
        yield event.base_snapshot_id, snap
    elif isinstance(event, StateCompleted):
        yield event.context_snapshot_id, snap
    elif isinstance(event, StateFailed | RunCompleted):
        for ref in _rules.artifact_refs(event):
            yield ref, snap
    elif isinstance(event, DomainEvent):
        if event.payload_ref is not None:
            yield event.payload_ref, ArtifactKind.OUTPUT
        binding = _rules.fact_binding_of(event)
        if binding is not None:
            yield binding[1], ArtifactKind.FACT_PAYLOAD
            for ref in _rules.meta_refs(event.payload):
                yield ref, _rules.DECLARED_REF_KIND


async def _copy_artifacts(source: ArtifactStore, target: ArtifactStore,
                          events: Sequence[Event]) -> int:
    """Put into ``target`` every artifact ``events`` name that it lacks, read from
    ``source`` (with its stored kind where the source can list it). Returns how many."""
    kinds: dict[str, ArtifactKind] = {}
    for event in events:
        for aid, kind in _kinds(event):
            kinds.setdefault(aid, kind)
    there = await asyncio.gather(*(target.exists(ArtifactId(a)) for a in kinds))
    wanted = [a for a, ok in zip(kinds, there, strict=True) if not ok]
    if not wanted:
        return 0
    items: list[tuple[str, ArtifactKind, bytes]] = []
    if isinstance(source, _ListsArtifacts):
        async for aid, kind, data in source.iter_artifacts(wanted):
            items.append((aid, kind, data))
    else:
        for aid in wanted:
            items.append((aid, kinds[aid], await source.get(ArtifactId(aid))))
    lacking = set(wanted) - {item[0] for item in items}
    if lacking:
        raise NotFoundError(f"the source lacks artifact {min(lacking)}, which the run names; "
                            "run verify on the source")

    async def put(aid: str, kind: ArtifactKind, data: bytes) -> None:
        # Bytes read back from a store were checked when they were stored there.
        stored = await target.put(kind, CheckedBytes(data))
        if stored != aid:
            raise CorruptionError(f"artifact {aid} of the source holds bytes hashing to "
                                  f"{stored}; run verify on the source")

    for i in range(0, len(items), _PUT_BATCH):
        await asyncio.gather(*(put(*item) for item in items[i:i + _PUT_BATCH]))
    return len(items)


def _check_args(run_id: RunId | str, at_state: StateId | str,
                reuse_facts: str) -> tuple[RunId, StateId]:
    if reuse_facts not in ("before", "all"):
        raise RunError(f"reuse_facts must be 'before' or 'all', not {reuse_facts!r}",
                       code=CODE_INVALID_ARGUMENT)
    rid = run_id if isinstance(run_id, RunId) else RunId.parse(run_id)
    return rid, StateId(at_state)


async def fork(store: Store, run_id: RunId | str, *, at_state: StateId | str,
               plan: ExecutionPlan | None = None, new_run_id: RunId | None = None,
               reuse_facts: ReuseFacts = "before", source: Store | None = None) -> ForkResult:
    """Create a new run in ``store`` that continues ``run_id`` from ``at_state``.

    ``source`` (default ``store``) holds the run and is only read: it may be a store opened
    read-only (a copied file); the artifacts the new run names are then copied into ``store``
    first. ``plan`` is the plan the fork will be resumed with: it is checked as
    :func:`~mfm_store.engine.resume` checks it (its op id against the manifest's:
    ``plan_op_id_mismatch``; every inherited state in it), and ``at_state`` must be the next
    state it would run; without ``plan`` (the command line) those checks wait for ``resume``.
    ``new_run_id`` defaults to a new UUID v4.

    Raises, writing nothing: ``StorageError`` ``store_read_only`` (``store`` is read-only),
    ``NotFoundError`` ``run_not_found``, ``RunError`` ``fork_state_not_reached`` (the run
    never entered ``at_state``), ``InvalidPlanError`` (``plan_op_id_mismatch`` and the other
    codes of ``resume``, ``recovery_state_not_in_plan`` if ``at_state`` is not in the plan,
    ``fork_state_not_next``), ``ConcurrencyError`` ``run_already_exists`` (``new_run_id`` has
    events), ``RunError`` ``invalid_argument`` (``reuse_facts``), ``IdValidationError`` (a
    malformed run or state id). Artifacts copied from ``source`` stay if the final append
    fails (content-addressed, harmless; ``gc`` removes them).
    """
    rid, state = _check_args(run_id, at_state, reuse_facts)
    if getattr(store, "read_only", False) is True:
        raise StorageError("cannot fork into a store opened read-only; open it writable, or "
                           "pass the read-only store as source= and a writable target",
                           code=CODE_READ_ONLY)
    src = store if source is None else source
    new_id = RunId.new() if new_run_id is None else new_run_id

    stream = await src.read_range(rid)
    if not stream:
        raise RunNotFoundError(f"run event stream was not found: {rid}")
    history = analyze_history(rid, stream)
    entered = [a for a in history.attempts if a.state_id == state]
    if history.orphan is not None and history.orphan.state_id == state:
        entered.append(history.orphan)
    if not entered:
        reached = list(dict.fromkeys(a.state_id for a in history.attempts))
        raise RunError(f"run {rid} never reached state {state}; it reached: "
                       f"{', '.join(reached) or 'no state'}", code=CODE_FORK_STATE_NOT_REACHED)
    first_entered = min(a.entered_seq for a in entered)
    cut = 0
    for env in stream:
        if env.seq >= first_entered:
            break
        if isinstance(env.event, RunStarted | StateCompleted):
            cut = env.seq

    old_keys, new_keys = _derived_prefixes(rid), _derived_prefixes(new_id)
    origin = ForkOrigin(source_run_id=rid, source_seq=cut, state_id=state,
                        reuse_facts=reuse_facts)
    events: list[Event] = []
    rebound = 0
    bound: set[str] = set()
    for env in stream:
        if env.seq > cut:
            break
        event = env.event
        moved = _rebound(event, old_keys, new_keys)
        if moved is not None:
            event, rebound = moved, rebound + 1
        events.append(event)
        binding = _rules.fact_binding_of(event)
        if binding is not None:
            bound.add(binding[0])
        if isinstance(event, RunStarted):
            events.append(DomainEvent(DOMAIN_RUN_FORKED, origin.to_json()))
    copied = cut
    reused = 0
    if reuse_facts == "all":
        for env in stream[cut:]:
            binding = _rules.fact_binding_of(env.event)
            if binding is None or _is_derived(binding[0]) or binding[0] in bound:
                continue
            bound.add(binding[0])
            events.append(env.event)
            reused += 1
    envelopes = [EventEnvelope(new_id, seq, None, e) for seq, e in enumerate(events, start=1)]

    # Every check before the first write: the new stream is well formed and fits the plan.
    fork_history = analyze_history(new_id, envelopes)
    if plan is not None:
        manifest = await load_manifest(src, history.run_started.manifest_id)
        order = check_resumable(plan, manifest, fork_history)
        if plan.state(state) is None:
            raise InvalidPlanError(f"fork state {state} is not in the plan",
                                   code=CODE_RECOVERY_STATE_NOT_IN_PLAN)
        done = set(fork_history.completed_states)
        pending = [s.state_id for s in order if s.state_id not in done]
        if pending[0] != state:
            raise InvalidPlanError(f"the plan would run {pending[0]} before the fork state "
                                   f"{state}", code=CODE_FORK_STATE_NOT_NEXT)
    if await store.head_seq(new_id) != 0:
        raise ConcurrencyError(f"run {new_id} already exists", code=CODE_RUN_ALREADY_EXISTS)

    artifacts = 0 if src is store else await _copy_artifacts(src, store, events)
    try:
        head = await store.append(new_id, 0, envelopes)
    except ConcurrencyError as exc:
        if exc.info.code != CODE_CONCURRENCY:
            raise
        raise ConcurrencyError(f"run {new_id} already exists",
                               code=CODE_RUN_ALREADY_EXISTS) from exc
    return ForkResult(run_id=new_id, source_run_id=rid, source_seq=cut, state_id=state,
                      head_seq=head, events_copied=copied, facts_rebound=rebound,
                      facts_reused=reused, artifacts_copied=artifacts)
