"""Export and import of runs as JSON Lines in the interchange form (SPEC §3, §8).

An export is UTF-8 JSON Lines::

    {"format":"mfm_store.export","version":1}
    {"artifact":"<64 hex>","kind":"FactPayload","data":"<base64 of the bytes>"}   (id order)
    {"run_id":"...","seq":1,"ts_millis":null,"event":{"Kernel":{...}}}           (interchange form)
    ...
    {"end":{"runs":R,"events":E,"artifacts":A}}

Artifacts come first, so that an import never holds an event whose artifacts are missing; each
run's events follow as one block, seq 1, 2, 3, ..., runs in the store's order. Fact bindings are
not written separately: they follow from the ``fact_recorded`` events, which ``append`` binds.
Event lines are byte for byte what the crate's serde_json writes for the envelope
(:meth:`EventEnvelope.to_json_text`: compact, non-ASCII kept, struct fields in the interchange
order, free-form JSON with sorted keys and ryu floats), so export → import into an empty store →
export gives the same bytes. Import reads JSON as serde_json does (:func:`parse_json`) and
accepts both that form and the one earlier versions wrote (insertion-ordered keys, Python's
float spelling). Run creation times and artifact creation times belong to the file that holds
them and are not exported.

Import is checked, then written: a first pass reads the whole export and writes nothing; it
refuses a malformed or truncated export (``export_malformed``), and a run the store already
holds with different events (``import_diverged``, naming the run and seq). The second pass puts
the artifacts (idempotent) and appends, per run, the events the store does not have yet. So
re-importing an export is harmless, and an import cut short is completed by importing again.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import IO, Any, Protocol, TypeVar

import attrs

from ._rules import artifact_refs, fact_binding_of
from .canonical import content_id, parse_json, respell_floats
from .errors import (
    CODE_EXPORT_MALFORMED,
    CODE_IMPORT_DIVERGED,
    CODE_RUN_NOT_FOUND,
    NotFoundError,
    RunNotFoundError,
    StorageError,
)
from .events import EventEnvelope, encode_event
from .ids import ArtifactId, RunId
from .stores import ArtifactKind, ProgressFn, Store, iter_runs

__all__ = [
    "CODE_EXPORT_MALFORMED",
    "CODE_IMPORT_DIVERGED",
    "CODE_RUN_NOT_FOUND",
    "EXPORT_FORMAT",
    "EXPORT_VERSION",
    "ExportReport",
    "ExportableStore",
    "ImportReport",
    "ProgressFn",
    "TransferError",
    "export_jsonl",
    "import_jsonl",
    "json_line",
]

EXPORT_FORMAT = "mfm_store.export"
EXPORT_VERSION = 1
_T = TypeVar("_T")



_EVENT_BATCH = 1000
_ARTIFACT_BATCH = 64
_ARTIFACT_BATCH_BYTES = 8 << 20


class TransferError(StorageError):
    """An export cannot be imported: malformed (``export_malformed``) or it contradicts the
    store (``import_diverged``). Nothing was written when it is raised."""


class ExportableStore(Store, Protocol):
    """A store whose artifacts can be listed (``SqliteStore``)."""

    def iter_artifacts(self, ids: Iterable[str] | None = None
                       ) -> AsyncIterator[tuple[ArtifactId, ArtifactKind, bytes]]: ...

    async def stats(self) -> dict[str, int]: ...


@attrs.frozen(kw_only=True)
class ExportReport:
    runs: int
    events: int
    artifacts: int
    bytes: int


@attrs.frozen(kw_only=True)
class ImportReport:
    """What an import did. ``runs_skipped``: runs the store already held in full (or with more
    events); ``runs_extended``: runs it held a prefix of."""

    runs_added: int
    runs_extended: int
    runs_skipped: int
    events_added: int
    artifacts_added: int
    artifacts_present: int

    @property
    def changed(self) -> bool:
        return bool(self.events_added or self.artifacts_added)


def json_line(obj: Any) -> bytes:
    """One compact JSON Lines line (UTF-8, no spaces, key order kept, floats spelled as
    serde_json spells them, newline-terminated). ``json_line(env.to_json())`` is the crate's
    line for ``env``."""
    return respell_floats(json.dumps(obj, ensure_ascii=False, separators=(",", ":"),
                                     allow_nan=False)).encode("utf-8") + b"\n"


def _event_line(env: EventEnvelope) -> bytes:
    return (env.to_json_text() + "\n").encode("utf-8")


def _no_progress(phase: str, n: int, total: int | None) -> None:
    return None


def _refs_of(env: EventEnvelope) -> Iterator[str]:
    yield from artifact_refs(env.event)
    binding = fact_binding_of(env.event)
    if binding is not None:
        yield binding[1]


# export

_PROGRESS_EVERY = 1000  # lines between progress reports from the export thread


class SnapshotStore(ExportableStore, Protocol):
    """A store that can be read in one snapshot from a worker thread (``SqliteStore``):
    export then streams from it at the speed of the file."""

    async def read_snapshot(self, fn: Callable[[Any], _T]) -> _T: ...


async def export_jsonl(store: ExportableStore, out: IO[bytes], *, run_id: RunId | None = None,
                       progress: ProgressFn | None = None) -> ExportReport:
    """Write an export of every run and artifact, or of ``run_id`` and the artifacts it
    references, to ``out`` (a binary stream). Only reads the store; memory stays bounded
    whatever its size (rows are streamed to ``out``).

    Writers may continue meanwhile: each run is exported up to its head when the export began
    (on SQLite the whole export is one read snapshot, written from a worker thread).
    Raises ``NotFoundError`` (``run_not_found``) for an unknown ``run_id`` and
    (``artifact_not_found``) if that run references an artifact the store lacks;
    ``CorruptionError`` if stored bytes fail their checks (nothing corrupt is exported).
    """
    report = progress or _no_progress
    if run_id is not None:
        run_id = RunId.parse(str(run_id)) if not isinstance(run_id, RunId) else run_id
    if callable(getattr(store, "read_snapshot", None)):
        loop = asyncio.get_running_loop()

        def tell(n: int, total: int | None) -> None:
            loop.call_soon_threadsafe(report, "export", n, total)

        snapshot_store: SnapshotStore = store  # type: ignore[assignment]
        result: ExportReport = await snapshot_store.read_snapshot(
            lambda snap: _export_snapshot(snap, out, run_id, tell))
        return result
    return await _export_store(store, out, run_id, report)


def _export_snapshot(snap: Any, out: IO[bytes], run_id: RunId | None,
                     tell: Callable[[int, int | None], None]) -> ExportReport:
    """The export from one read snapshot (``ReadSnapshot``), in the calling worker thread."""
    if run_id is None:
        _, n_events, n_artifacts = snap.counts()
    else:
        n_events = snap.run_head(run_id)
        n_artifacts = snap.note_refs(
            ref for _, _, _, event in snap.events(run_id) for ref in _event_refs(event))
    tell(0, n_events + n_artifacts)
    written = out.write(json_line({"format": EXPORT_FORMAT, "version": EXPORT_VERSION}))
    pending = artifacts = 0
    for aid, kind, data in snap.artifacts(noted=run_id is not None):
        written += out.write(_artifact_line(aid, kind, data))
        artifacts += 1
        pending += 1
        if pending >= _PROGRESS_EVERY:
            tell(pending, None)
            pending = 0
    if run_id is not None and artifacts != n_artifacts:
        raise NotFoundError(f"run {run_id} references {n_artifacts - artifacts} artifact(s) "
                            "missing from the store; run verify")
    runs = events = 0

    def on_run(_run: RunId) -> None:
        nonlocal runs
        runs += 1

    for run, seq, ts, event in snap.events(run_id, on_run):
        written += out.write((EventEnvelope(run, seq, ts, event).to_json_text() + "\n")
                             .encode("utf-8"))
        events += 1
        pending += 1
        if pending >= _PROGRESS_EVERY:
            tell(pending, None)
            pending = 0
    if pending:
        tell(pending, None)
    written += out.write(json_line({"end": {"runs": runs, "events": events,
                                            "artifacts": artifacts}}))
    out.flush()
    return ExportReport(runs=runs, events=events, artifacts=artifacts, bytes=written)


def _event_refs(event: Any) -> Iterator[str]:
    yield from artifact_refs(event)
    binding = fact_binding_of(event)
    if binding is not None:
        yield binding[1]


def _artifact_line(aid: str, kind: ArtifactKind, data: bytes) -> bytes:
    if kind.is_other:
        return json_line({"artifact": aid, "kind": kind.to_json(),
                          "data": base64.b64encode(data).decode("ascii")})
    # What json_line writes, without its encoder: the id is hex, a named kind one ASCII word,
    # base64 needs no escaping (export rate, benchmarks/whole_file.py).
    return b"".join((b'{"artifact":"', aid.encode("ascii"), b'","kind":"',
                     kind.name.encode("ascii"), b'","data":"', base64.b64encode(data),
                     b'"}\n'))


async def _export_store(store: ExportableStore, out: IO[bytes], run_id: RunId | None,
                        report: ProgressFn) -> ExportReport:
    """The export through the store protocol (any backend): runs read a page at a time."""
    wanted: set[str] | None = None
    if run_id is not None:
        head = await store.head_seq(run_id)
        if head == 0:
            raise RunNotFoundError(f"run not found: {run_id}")
        wanted = set()
        async for env in store.iter_events(run_id, 1, head):
            wanted.update(_refs_of(env))
        heads: list[tuple[RunId, int]] | None = [(run_id, head)]
        n_events = head
    else:
        heads = None
        n_events = 0
        async for summary in iter_runs(store):
            n_events += summary.head_seq
    n_artifacts = len(wanted) if wanted is not None else (await store.stats())["artifacts"]
    report("export", 0, n_events + n_artifacts)

    written = out.write(json_line({"format": EXPORT_FORMAT, "version": EXPORT_VERSION}))
    artifacts = 0
    async for aid, kind, data in store.iter_artifacts(wanted):
        written += out.write(_artifact_line(aid, kind, data))
        artifacts += 1
        report("export", 1, None)
    if wanted is not None and artifacts != len(wanted):
        raise NotFoundError(f"run {run_id} references {len(wanted) - artifacts} artifact(s) "
                            "missing from the store; run verify")
    runs = events = 0

    async def all_heads() -> AsyncIterator[tuple[RunId, int]]:
        if heads is not None:
            for pair in heads:
                yield pair
            return
        async for summary in iter_runs(store):
            yield summary.run_id, summary.head_seq

    async for rid, head in all_heads():
        runs += 1
        async for env in store.iter_events(rid, 1, head):
            written += out.write(_event_line(env))
            events += 1
            report("export", 1, None)
    written += out.write(json_line({"end": {"runs": runs, "events": events,
                                            "artifacts": artifacts}}))
    out.flush()
    return ExportReport(runs=runs, events=events, artifacts=artifacts, bytes=written)


# import

@attrs.frozen
class _Artifact:
    artifact_id: ArtifactId
    kind: ArtifactKind
    data: bytes


@attrs.frozen
class _End:
    runs: int
    events: int
    artifacts: int


_Item = _Artifact | EventEnvelope | _End


def _malformed(lineno: int, why: str) -> TransferError:
    return TransferError(f"not a valid mfm_store export: line {lineno}: {why}",
                         code=CODE_EXPORT_MALFORMED)


def _parse_artifact(obj: dict[str, Any], lineno: int) -> _Artifact:
    if set(obj) != {"artifact", "kind", "data"} or not isinstance(obj["data"], str):
        raise _malformed(lineno, "an artifact line needs exactly artifact, kind, data")
    try:
        aid = ArtifactId(obj["artifact"])
        kind = ArtifactKind.from_json(obj["kind"])
        data = base64.b64decode(obj["data"], validate=True)
    except (ValueError, binascii.Error) as exc:
        raise _malformed(lineno, str(exc)) from None
    if content_id(data) != aid:
        raise _malformed(lineno, f"the bytes of artifact {aid} do not hash to its id")
    return _Artifact(aid, kind, data)


def _parse_end(obj: dict[str, Any], lineno: int) -> _End:
    counts = obj["end"]
    names = ("runs", "events", "artifacts")
    if (len(obj) != 1 or not isinstance(counts, dict) or set(counts) != set(names)
            or not all(isinstance(counts[n], int) for n in names)):
        raise _malformed(lineno, "malformed end line")
    return _End(*(counts[n] for n in names))


def _parse(raw: bytes, lineno: int) -> _Item:
    try:
        obj = parse_json(raw)
    except ValueError as exc:
        raise _malformed(lineno, f"not JSON the crate can read ({exc})") from None
    if not isinstance(obj, dict):
        raise _malformed(lineno, "not a JSON object")
    if "artifact" in obj:
        return _parse_artifact(obj, lineno)
    if "end" in obj:
        return _parse_end(obj, lineno)
    try:
        env = EventEnvelope.from_json(obj)
        encode_event(env.event)
    except ValueError as exc:
        raise _malformed(lineno, str(exc)) from None
    return env


def _items(source: IO[bytes], progress: ProgressFn, phase: str) -> Iterator[tuple[int, _Item]]:
    """Every item after the header, checked for shape and order; the end line last."""
    source.seek(0)
    header = source.readline()
    progress(phase, len(header), None)
    try:
        head = json.loads(header)
    except ValueError:
        head = None
    if head != {"format": EXPORT_FORMAT, "version": EXPORT_VERSION}:
        if isinstance(head, dict) and head.get("format") == EXPORT_FORMAT:
            raise _malformed(1, f"export version {head.get('version')!r} is not supported "
                                f"(this mfm_store reads version {EXPORT_VERSION})")
        raise _malformed(1, "no mfm_store export header")
    seen_event = False
    end: _End | None = None
    lineno = 1
    for raw in source:
        lineno += 1
        progress(phase, len(raw), None)
        if end is not None:
            raise _malformed(lineno, "content after the end line")
        item = _parse(raw, lineno)
        if isinstance(item, _Artifact) and seen_event:
            raise _malformed(lineno, "artifact after the first event")
        seen_event = seen_event or isinstance(item, EventEnvelope)
        if isinstance(item, _End):
            end = item
        yield lineno, item
    if end is None:
        raise _malformed(lineno, "no end line: the export is truncated")


def _normal(env: EventEnvelope) -> bytes:
    return _event_line(env)


class _StoredEvents:
    """The store's events of one run, read in pages, one at a time."""

    def __init__(self, store: Store, run_id: RunId) -> None:
        self._store = store
        self._run_id = run_id
        self._page: list[EventEnvelope] = []

    async def at(self, seq: int) -> EventEnvelope:
        """The event at ``seq``; called with seq 1, 2, 3, ... (below the store's head)."""
        if not self._page:
            self._page = await self._store.read_range(self._run_id, seq, seq + _EVENT_BATCH - 1)
            self._page.reverse()
        env = self._page.pop()
        assert env.seq == seq
        return env


@attrs.define
class _RunPlan:
    run_id: RunId
    store_head: int
    events: int = 0


async def _check(store: Store, source: IO[bytes], progress: ProgressFn) -> list[_RunPlan]:
    """Pass 1: validate everything against the store, write nothing; one plan per run."""
    available: set[str] = set()
    plans: list[_RunPlan] = []
    done: set[RunId] = set()
    current: _RunPlan | None = None
    stored: _StoredEvents | None = None
    bindings: dict[str, str] = {}
    artifacts = 0
    end = _End(0, 0, 0)
    for lineno, item in _items(source, progress, "check"):
        if isinstance(item, _Artifact):
            available.add(item.artifact_id)
            artifacts += 1
            continue
        if isinstance(item, _End):
            end = item
            continue
        env = item
        if current is None or env.run_id != current.run_id:
            if env.run_id in done:
                raise _malformed(lineno, f"the events of run {env.run_id} are not contiguous")
            done.add(env.run_id)
            current = _RunPlan(env.run_id, await store.head_seq(env.run_id))
            plans.append(current)
            stored = _StoredEvents(store, env.run_id)
            bindings = {}
        if env.seq != current.events + 1:
            raise _malformed(lineno, f"run {env.run_id}: seq {env.seq} where "
                                     f"{current.events + 1} was expected")
        current.events += 1
        if env.seq <= current.store_head:
            assert stored is not None
            if _normal(await stored.at(env.seq)) != _normal(env):
                raise TransferError(
                    f"run {env.run_id} diverges from the store at seq {env.seq}: the store "
                    "holds a different event there; nothing was imported",
                    code=CODE_IMPORT_DIVERGED)
        binding = fact_binding_of(env.event)
        if binding is not None and bindings.setdefault(binding[0], binding[1]) != binding[1]:
            raise _malformed(lineno, f"run {env.run_id} binds fact {binding[0]!r} twice to "
                                     "different payloads")
        if env.seq > current.store_head:
            for ref in _refs_of(env):
                if ref in available:
                    continue
                if not await store.exists(ArtifactId(ref)):
                    raise _malformed(lineno, f"event {env.seq} of run {env.run_id} refers to "
                                             f"artifact {ref}, which is neither in the export "
                                             "nor in the store")
                available.add(ref)
    events = sum(p.events for p in plans)
    if (end.runs, end.events, end.artifacts) != (len(plans), events, artifacts):
        raise _malformed(lineno, f"the end line counts {end.runs} runs, {end.events} events, "
                                 f"{end.artifacts} artifacts; the file holds {len(plans)}, "
                                 f"{events}, {artifacts}")
    return plans


async def _put_all(store: Store, batch: list[_Artifact]) -> int:
    """Put a batch concurrently (one group commit); returns how many were new."""
    present = await asyncio.gather(*(store.exists(a.artifact_id) for a in batch))
    new = [a for a, there in zip(batch, present, strict=True) if not there]
    await asyncio.gather(*(store.put(a.kind, a.data) for a in new))
    return len(new)


async def import_jsonl(store: Store, source: IO[bytes], *,
                       progress: ProgressFn | None = None) -> ImportReport:
    """Import an export read from ``source`` (a seekable binary stream, read twice).

    Checks the whole export first and raises ``TransferError`` before writing anything if it
    is malformed or truncated (``export_malformed``) or contradicts a run the store holds
    (``import_diverged``). Then puts the artifacts and appends the missing events of each run,
    in batches, each durable on return. If another writer appends to an imported run meanwhile
    the append fails with ``ConcurrencyError``; what was written before stays (consistent,
    and completed by importing again).
    """
    report = progress or _no_progress
    if not source.seekable():
        raise ValueError("import_jsonl needs a seekable stream (it reads the export twice)")
    source.seek(0, 2)
    size = source.tell()
    report("check", 0, size)
    plans = {p.run_id: p for p in await _check(store, source, report)}
    report("import", 0, size)
    added = present = events_added = 0
    batch: list[_Artifact] = []
    pending: list[EventEnvelope] = []

    async def flush_events() -> None:
        nonlocal events_added
        if pending:
            await store.append(pending[0].run_id, pending[0].seq - 1, pending)
            events_added += len(pending)
            pending.clear()

    for _, item in _items(source, report, "import"):
        if isinstance(item, _Artifact):
            batch.append(item)
            if (len(batch) >= _ARTIFACT_BATCH
                    or sum(len(a.data) for a in batch) >= _ARTIFACT_BATCH_BYTES):
                new = await _put_all(store, batch)
                added, present = added + new, present + len(batch) - new
                batch.clear()
            continue
        if batch:
            new = await _put_all(store, batch)
            added, present = added + new, present + len(batch) - new
            batch.clear()
        if isinstance(item, _End):
            break
        if item.seq <= plans[item.run_id].store_head:
            continue
        if pending and (pending[0].run_id != item.run_id or len(pending) >= _EVENT_BATCH):
            await flush_events()
        pending.append(item)
    await flush_events()
    values = list(plans.values())
    return ImportReport(
        runs_added=sum(1 for p in values if p.store_head == 0),
        runs_extended=sum(1 for p in values if 0 < p.store_head < p.events),
        runs_skipped=sum(1 for p in values if p.store_head >= p.events),
        events_added=events_added, artifacts_added=added, artifacts_present=present)

