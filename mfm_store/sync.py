"""Push and pull of runs between any two stores (SPEC §11): incremental, checked, resumable.

``await push(local, remote)`` copies the local store's runs to ``remote``; ``await pull(local,
remote)`` copies ``remote``'s runs into ``local``; both are :func:`sync` (source, then
destination). Only the public store protocol is used, so every backend works on both sides.

Per run, the destination receives the source's events after the destination's head, appended
in batches with ``expected_seq`` = the head it had: a writer appending to that run at the
destination meanwhile makes the run fail cleanly (reported, nothing interleaved), and a sync
cut short at any moment (even by SIGKILL) leaves whole batches only, so running it again
completes it without duplicates. Before each batch the artifacts its events name that the
destination lacks are put there (asked in batches, one ``store.missing(ids)`` query each);
fact bindings follow from the ``fact_recorded`` events, which ``append`` binds in the same
transaction. Every write goes through the destination's own
``put`` and ``append``, so ids, envelopes, the secret policy and the reference check are those
of every write path.

Checked: when a run's heads differ, the destination's events are compared with the source's
up to the shorter head; a difference refuses that run (``sync_diverged``, naming the first
differing seq), writes nothing to it, and the other runs continue. A run whose heads are equal
is not read (that keeps a repeated sync at the cost of one heads query per side), unless
``full_check=True``.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any, Protocol, runtime_checkable

import attrs

from . import _rules
from .errors import (
    CODE_CORRUPTION,
    CODE_DESTINATION_EXISTS,
    CODE_INVALID_ARGUMENT,
    CODE_INVALID_ENVELOPES,
    CODE_INVALID_ID,
    CODE_NOT_FOUND,
    CODE_RUN_NOT_FOUND,
    CODE_SECRETS_DETECTED,
    CODE_SYNC_DIVERGED,
    ConcurrencyError,
    CorruptionError,
    MfmError,
    NotFoundError,
    RunNotFoundError,
    StorageError,
)
from .events import (
    DOMAIN_FACT_RECORDED,
    DomainEvent,
    EventEnvelope,
    RunCompleted,
    RunStarted,
    StateCompleted,
    StateEntered,
    StateFailed,
)
from .ids import ArtifactId, RunId
from .stores import ArtifactKind, ProgressFn, Store, iter_runs

__all__ = [
    "CODE_RUN_NOT_FOUND",
    "CODE_SYNC_DIVERGED",
    "RunProblem",
    "SyncDivergedError",
    "SyncReport",
    "copy_to_file",
    "pull",
    "push",
    "sync",
]

_EVENT_BATCH = 500
_MISSING_BATCH = 500
_PUT_BATCH_BYTES = 8 << 20
_KNOWN_MAX = 4096  # ids remembered as present at the destination (~0.6 MB at most)
_RUN_PAGE = 1000  # source runs planned at a time
# Up to this many destination runs, their heads are read in one pass (list_runs pages) and
# kept; beyond it, each page of source runs asks the destination for those runs' heads.
_DST_HEADS_MAX = 20_000
# Errors that concern one run (its data, or a writer racing us there): reported for that run
# while the others continue. Anything else (the store went away, is read-only, the disk is
# full) stops the whole sync; running it again resumes it.
_RUN_CODES = frozenset({CODE_SYNC_DIVERGED, CODE_NOT_FOUND, CODE_CORRUPTION,
                        CODE_SECRETS_DETECTED, CODE_INVALID_ENVELOPES, CODE_INVALID_ARGUMENT})


class SyncDivergedError(StorageError):
    """The destination holds a different history under the same run id."""

    default_code = CODE_SYNC_DIVERGED

    def __init__(self, run_id: RunId, seq: int) -> None:
        super().__init__(f"run {run_id} diverges at seq {seq}: the destination holds a "
                         "different event there; the run was left untouched",
                         details={"run_id": str(run_id), "seq": seq})
        self.run_id = run_id
        self.seq = seq


@runtime_checkable
class _ListsArtifacts(Protocol):
    def iter_artifacts(self, ids: Iterable[str] | None = None
                       ) -> AsyncIterator[tuple[ArtifactId, ArtifactKind, bytes]]: ...


@attrs.frozen(kw_only=True)
class RunProblem:
    """A run that was not (fully) copied: ``code`` is ``sync_diverged`` (``seq`` is the first
    differing seq), ``event_store_concurrency`` (a writer at the destination moved the head),
    or the code of the refusal (e.g. ``artifact_not_found``, ``secrets_detected``)."""

    run_id: RunId
    code: str
    message: str
    seq: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"run_id": str(self.run_id), "code": self.code, "seq": self.seq,
                "message": self.message}


@attrs.frozen(kw_only=True)
class SyncReport:
    """What a sync did. ``runs_ahead``: the destination holds more events than the source (and
    the source's are a prefix of them); ``runs_unchanged``: equal heads, not read."""

    runs: int
    runs_added: int
    runs_extended: int
    runs_unchanged: int
    runs_ahead: int
    events_copied: int
    events_compared: int
    artifacts_copied: int
    artifacts_present: int
    artifact_bytes: int
    problems: tuple[RunProblem, ...]
    seconds: float

    @property
    def ok(self) -> bool:
        """True when every run asked for is now at the destination as at the source."""
        return not self.problems

    @property
    def diverged(self) -> tuple[RunProblem, ...]:
        return tuple(p for p in self.problems if p.code == CODE_SYNC_DIVERGED)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok, "runs": self.runs, "runs_added": self.runs_added,
            "runs_extended": self.runs_extended, "runs_unchanged": self.runs_unchanged,
            "runs_ahead": self.runs_ahead, "events_copied": self.events_copied,
            "events_compared": self.events_compared,
            "artifacts_copied": self.artifacts_copied,
            "artifacts_present": self.artifacts_present,
            "artifact_bytes": self.artifact_bytes,
            "problems": [p.to_json() for p in self.problems],
            "seconds": round(self.seconds, 3),
        }


@attrs.define
class _Plan:
    run_id: RunId
    src_head: int
    dst_head: int


def _inferred_kinds(env: EventEnvelope) -> Iterable[tuple[str, ArtifactKind]]:
    """Each artifact ``env`` names with the kind its role implies (for sources that cannot
    list artifacts with their stored kind)."""
    ev = env.event
    snap = ArtifactKind.CONTEXT_SNAPSHOT
    if isinstance(ev, RunStarted):
        yield ev.manifest_id, ArtifactKind.MANIFEST
        yield ev.initial_snapshot_id, snap
    elif isinstance(ev, StateEntered):
        yield ev.base_snapshot_id, snap
    elif isinstance(ev, StateCompleted):
        yield ev.context_snapshot_id, snap
    elif isinstance(ev, StateFailed) and ev.failure_snapshot_id is not None:
        yield ev.failure_snapshot_id, snap
    elif isinstance(ev, RunCompleted) and ev.final_snapshot_id is not None:
        yield ev.final_snapshot_id, snap
    elif isinstance(ev, DomainEvent):
        if ev.payload_ref is not None:
            yield ev.payload_ref, ArtifactKind.OUTPUT
        if ev.name == DOMAIN_FACT_RECORDED:
            binding = _rules.fact_binding_of(ev)
            if binding is not None:
                yield binding[1], ArtifactKind.FACT_PAYLOAD
            for ref in _rules.meta_refs(ev.payload):
                yield ref, _rules.DECLARED_REF_KIND


def _line(env: EventEnvelope) -> str:
    return env.to_json_text()


def _no_progress(phase: str, n: int, total: int | None) -> None:
    return None


class _Sync:
    def __init__(self, src: Store, dst: Store, progress: ProgressFn) -> None:
        self.src = src
        self.dst = dst
        self.progress = progress
        self.known: set[str] = set()  # artifacts known to be at the destination
        self.inflight: dict[str, asyncio.Future[None]] = {}  # being sent by a worker
        self.added = self.extended = self.unchanged = self.ahead = 0
        self.events = self.compared = 0
        self.artifacts_copied = self.artifacts_present = self.artifact_bytes = 0
        self.problems: list[tuple[int, RunProblem]] = []  # (place in source order, problem)

    # artifacts

    async def _missing(self, ids: list[str]) -> list[str]:
        """Those of ``ids`` the destination lacks, asked in batches (one query each)."""
        out: list[str] = []
        for i in range(0, len(ids), _MISSING_BATCH):
            chunk = ids[i:i + _MISSING_BATCH]
            lacking = await self.dst.missing([ArtifactId(a) for a in chunk])
            out.extend(a for a in chunk if a in lacking)
        return out

    async def _fetch(self, ids: list[str], kinds: dict[str, ArtifactKind]
                     ) -> AsyncIterator[tuple[str, ArtifactKind, bytes]]:
        if isinstance(self.src, _ListsArtifacts):
            async for aid, kind, data in self.src.iter_artifacts(ids):
                yield aid, kind, data
        else:
            for wanted in ids:
                yield wanted, kinds[wanted], await self.src.get(ArtifactId(wanted))

    async def _send_artifacts(self, run_id: RunId, envs: Sequence[EventEnvelope]) -> None:
        """Put at the destination every artifact ``envs`` name that it lacks. An artifact
        another run's worker is sending already is waited for, not sent twice."""
        kinds: dict[str, ArtifactKind] = {}
        first_seq: dict[str, int] = {}
        for env in envs:
            for aid, kind in _inferred_kinds(env):
                if aid not in self.known and aid not in kinds:
                    kinds[aid] = kind
                    first_seq[aid] = env.seq
        while True:
            todo = [a for a in kinds if a not in self.known]
            if not todo:
                return
            waits = {self.inflight[a] for a in todo if a in self.inflight}
            ours = {a: kinds[a] for a in todo if a not in self.inflight}
            if ours:
                done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                for aid in ours:
                    self.inflight[aid] = done
                try:
                    await self._transfer(run_id, ours, first_seq)
                finally:
                    for aid in ours:
                        del self.inflight[aid]
                    done.set_result(None)
            # Whatever another worker failed to send is neither known nor in flight now:
            # the next round sends it from here.
            await asyncio.gather(*waits)

    async def _transfer(self, run_id: RunId, kinds: dict[str, ArtifactKind],
                        first_seq: dict[str, int]) -> None:
        wanted = await self._missing(list(kinds))
        present = set(kinds) - set(wanted)
        self.artifacts_present += len(present)
        self._remember(present)
        if not wanted:
            return
        sent: set[str] = set()
        fetched: list[tuple[str, ArtifactKind, bytes]] = []
        size = 0
        # Read first, then put together: the puts then share one commit of the destination.
        async for item in self._fetch(wanted, kinds):
            fetched.append(item)
            sent.add(item[0])
            size += len(item[2])
            if size >= _PUT_BATCH_BYTES:
                await self._put_all(fetched)
                size = 0
        await self._put_all(fetched)
        lacking = [a for a in wanted if a not in sent]
        if lacking:
            absent = min(lacking, key=first_seq.__getitem__)
            raise NotFoundError(f"run {run_id}: event {first_seq[absent]} names artifact "
                                f"{absent}, which the source lacks; run verify on the source")
        self.artifacts_copied += len(sent)
        self._remember(sent)

    async def _put(self, aid: str, kind: ArtifactKind, data: bytes) -> ArtifactId:
        stored = await self.dst.put(kind, data)
        self.artifact_bytes += len(data)
        if stored != aid:
            raise CorruptionError(f"artifact {aid} of the source holds bytes hashing to "
                                  f"{stored}; run verify on the source")
        return stored

    async def _put_all(self, items: list[tuple[str, ArtifactKind, bytes]]) -> None:
        """Put every item at once (one group commit where the store has it); when some
        fail, every put has ended before the first error is raised."""
        try:
            results = await asyncio.gather(*(self._put(*item) for item in items),
                                           return_exceptions=True)
        finally:
            items.clear()
        for result in results:
            if isinstance(result, BaseException):
                raise result

    def _remember(self, ids: Iterable[str]) -> None:
        if len(self.known) > _KNOWN_MAX:
            self.known.clear()
        self.known.update(ids)

    # events

    async def _first_difference(self, run_id: RunId, last: int) -> int | None:
        """The first seq in ``1..last`` where the two stores' events differ, else None."""
        seq = 1
        while seq <= last:
            stop = min(seq + _EVENT_BATCH - 1, last)
            mine, theirs = await asyncio.gather(self.src.read_range(run_id, seq, stop),
                                                self.dst.read_range(run_id, seq, stop))
            for a, b in zip(mine, theirs, strict=False):
                if a.seq != b.seq or _line(a) != _line(b):
                    return min(a.seq, b.seq)
            if len(mine) != len(theirs) or len(mine) != stop - seq + 1:
                return seq + min(len(mine), len(theirs))
            self.compared += len(mine)
            seq = stop + 1
        return None

    async def _copy(self, plan: _Plan) -> None:
        rid = plan.run_id
        if plan.dst_head > 0:
            diff = await self._first_difference(rid, min(plan.src_head, plan.dst_head))
            if diff is not None:
                raise SyncDivergedError(rid, diff)
        if plan.dst_head >= plan.src_head:
            if plan.dst_head > plan.src_head:
                self.ahead += 1
            else:
                self.unchanged += 1
            return
        head = plan.dst_head
        while head < plan.src_head:
            stop = min(head + _EVENT_BATCH, plan.src_head)
            envs = await self.src.read_range(rid, head + 1, stop)
            if len(envs) != stop - head:
                raise CorruptionError(f"run {rid}: the source returned {len(envs)} events for "
                                      f"seqs {head + 1}..{stop}; run verify on the source")
            await self._send_artifacts(rid, envs)
            head = await self.dst.append(rid, head, envs)
            self.events += len(envs)
            self.progress("sync", len(envs), None)
        if plan.dst_head == 0:
            self.added += 1
        else:
            self.extended += 1

    async def run_one(self, place: int, plan: _Plan) -> None:
        try:
            await self._copy(plan)
        except SyncDivergedError as exc:
            self.problems.append((place, RunProblem(run_id=plan.run_id, code=exc.info.code,
                                                    message=str(exc), seq=exc.seq)))
        except ConcurrencyError as exc:
            self.problems.append((place, RunProblem(run_id=plan.run_id, code=exc.info.code,
                                                    message=f"run {plan.run_id}: {exc}")))
        except MfmError as exc:
            if exc.info.code not in _RUN_CODES:
                raise
            self.problems.append((place, RunProblem(run_id=plan.run_id, code=exc.info.code,
                                                    message=f"run {plan.run_id}: {exc}")))


def _run_id(value: object) -> RunId:
    if isinstance(value, RunId):
        return value
    if isinstance(value, str):
        try:
            return RunId.parse(value)
        except ValueError:
            pass
    raise StorageError(f"invalid run_id: {value!r}"[:200], code=CODE_INVALID_ID)


async def _heads(store: Store, run_ids: list[RunId]) -> list[int]:
    return list(await asyncio.gather(*(store.head_seq(r) for r in run_ids)))


async def _all_heads(store: Store) -> dict[RunId, int] | None:
    """Every run's head, if the store holds at most ``_DST_HEADS_MAX`` runs, else None."""
    heads: dict[RunId, int] = {}
    async for summary in iter_runs(store, page_size=_RUN_PAGE):
        if len(heads) >= _DST_HEADS_MAX:
            return None
        heads[summary.run_id] = summary.head_seq
    return heads


async def _pages(src: Store, dst: Store, wanted: list[RunId] | None
                 ) -> AsyncIterator[list[tuple[RunId, int, int]]]:
    """``(run, source head, destination head)`` of the runs to look at, in source order, a
    page at a time: every run of the source (:func:`iter_runs`) or those of ``wanted``.
    Memory holds one page (and at most ``_DST_HEADS_MAX`` destination heads), whatever the
    number of runs."""
    if wanted is not None:
        src_heads, dst_heads = await asyncio.gather(_heads(src, wanted), _heads(dst, wanted))
        yield list(zip(wanted, src_heads, dst_heads, strict=True))
        return
    known = await _all_heads(dst)
    page: list[tuple[RunId, int]] = []

    async def flush() -> list[tuple[RunId, int, int]]:
        if known is not None:
            dst_heads = [known.get(rid, 0) for rid, _ in page]
        else:
            dst_heads = await _heads(dst, [rid for rid, _ in page])
        out = [(rid, head, dst_head) for (rid, head), dst_head in zip(page, dst_heads,
                                                                         strict=True)]
        page.clear()
        return out

    async for summary in iter_runs(src, page_size=_RUN_PAGE):
        page.append((summary.run_id, summary.head_seq))
        if len(page) >= _RUN_PAGE:
            yield await flush()
    if page:
        yield await flush()


async def _wanted(src: Store, runs: Iterable[RunId | str] | None) -> list[RunId] | None:
    """The runs of ``runs`` (checked: each must be in the source), or None for every run."""
    if runs is None:
        return None
    wanted = list(dict.fromkeys(_run_id(r) for r in runs))
    for rid, head in zip(wanted, await _heads(src, wanted), strict=True):
        if head == 0:
            raise RunNotFoundError(f"run not found in the source: {rid}")
    return wanted


async def sync(src: Store, dst: Store, *, runs: Iterable[RunId | str] | None = None,
               progress: ProgressFn | None = None, full_check: bool = False,
               concurrency: int = 8) -> SyncReport:
    """Copy to ``dst`` what it lacks of ``src``'s runs (all, or those of ``runs``).

    ``src`` is only read. Runs are listed a page at a time (memory stays bounded whatever
    their number) and copied up to the heads they had when their page was listed,
    ``concurrency`` runs at a time. A run that diverges, that a writer at ``dst`` appends to
    meanwhile, or whose data ``dst`` refuses is listed in ``report.problems`` and the others
    continue; a failure of a store itself (unavailable, read-only, disk full) is raised, and
    running the sync again resumes it. Raises ``NotFoundError`` (``run_not_found``) before
    writing anything if a run of ``runs`` is not in ``src``. Progress: phase ``"sync"``,
    units events copied.
    """
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise StorageError(f"concurrency must be a positive integer, got {concurrency!r}",
                           code=CODE_INVALID_ARGUMENT)
    started = time.perf_counter()
    report = progress or _no_progress
    wanted = await _wanted(src, runs)
    total = 0
    if progress is not None:
        # The total for the progress report takes a first pass over the heads (no copy).
        async for page in _pages(src, dst, wanted):
            total += sum(max(head - dst_head, 0) for _rid, head, dst_head in page)
    report("sync", 0, total)
    state = _Sync(src, dst, report)
    considered = place = 0
    async for page in _pages(src, dst, wanted):
        plans: list[tuple[int, _Plan]] = []
        for rid, head, dst_head in page:
            if head <= 0:
                continue
            considered += 1
            place += 1
            if full_check or head != dst_head:
                plans.append((place, _Plan(rid, head, dst_head)))
            else:
                state.unchanged += 1
        await _run_plans(state, plans, concurrency)
    problems = tuple(p for _place, p in sorted(state.problems, key=lambda item: item[0]))
    return SyncReport(
        runs=considered, runs_added=state.added, runs_extended=state.extended,
        runs_unchanged=state.unchanged, runs_ahead=state.ahead, events_copied=state.events,
        events_compared=state.compared, artifacts_copied=state.artifacts_copied,
        artifacts_present=state.artifacts_present, artifact_bytes=state.artifact_bytes,
        problems=problems, seconds=time.perf_counter() - started)


async def _run_plans(state: _Sync, plans: list[tuple[int, _Plan]], concurrency: int) -> None:
    """Copy ``plans`` (one page of runs), ``concurrency`` runs at a time."""
    queue = iter(plans)

    async def worker() -> None:
        for place, plan in queue:
            await state.run_one(place, plan)

    tasks = [asyncio.ensure_future(worker()) for _ in range(min(concurrency, len(plans)))]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def push(local: Store, remote: Store, *, runs: Iterable[RunId | str] | None = None,
               progress: ProgressFn | None = None, full_check: bool = False,
               concurrency: int = 8) -> SyncReport:
    """Copy ``local``'s runs to ``remote`` (``sync(local, remote)``)."""
    return await sync(local, remote, runs=runs, progress=progress, full_check=full_check,
                      concurrency=concurrency)


async def pull(local: Store, remote: Store, *, runs: Iterable[RunId | str] | None = None,
               progress: ProgressFn | None = None, full_check: bool = False,
               concurrency: int = 8) -> SyncReport:
    """Copy ``remote``'s runs into ``local`` (``sync(remote, local)``): the mirror of
    :func:`push`, with the stores named in the same order."""
    return await sync(remote, local, runs=runs, progress=progress, full_check=full_check,
                      concurrency=concurrency)


async def copy_to_file(src: Store, dest: str | os.PathLike[str], *,
                       runs: Iterable[RunId | str] | None = None,
                       progress: ProgressFn | None = None) -> SyncReport:
    """Copy ``src``'s runs (all, or those of ``runs``) into a new SQLite file at ``dest``: a
    compact file, each run's events stored together, that replays offline like a backup.

    The runs are synced into a staging file beside ``dest``, which is then written out with
    :meth:`SqliteStore.backup`: ``dest`` appears only once complete. Raises ``StorageError``
    (``destination_exists``) if ``dest`` exists, and the first problem's error if a run could
    not be copied (nothing at ``dest`` then).
    """
    from .sqlite import SqliteStore

    target = os.fspath(dest)
    if os.path.lexists(target):
        raise StorageError(f"{target}: already exists; choose a new file",
                           code=CODE_DESTINATION_EXISTS)
    folder = os.path.dirname(os.path.abspath(target))
    with tempfile.TemporaryDirectory(dir=folder, prefix=".mfm-copy-") as tmp:
        # The staging file is thrown away: durability comes from backup's own sync.
        async with SqliteStore.open(os.path.join(tmp, "staging.db"),
                                    durability="normal") as staging:
            report = await sync(src, staging, runs=runs, progress=progress)
            if report.problems:
                first = report.problems[0]
                raise StorageError(first.message, code=first.code,
                                   details={"run_id": str(first.run_id), "seq": first.seq})
            await staging.backup(target)
    return report
