"""An in-memory store with exactly the contract of the SQLite store; the reference in tests."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import datetime
from types import TracebackType

import attrs

from . import _paging, _rules
from .canonical import artifact_id_for_bytes
from .errors import (
    CODE_INVALID_ENVELOPES,
    CODE_STORE_CLOSED,
    NotFoundError,
    StorageError,
)
from .events import EventEnvelope, decode_event, encode_event
from .follow import After, Follower, Hub
from .ids import ArtifactId, FactKey, OpId, RunId
from .retention import PruneReport
from .stores import ArtifactKind, FactBinding, RunSummary, Store

__all__ = ["MemoryStore"]


@attrs.define
class _Run:
    events: list[EventEnvelope] = attrs.Factory(list)
    facts: dict[FactKey, tuple[ArtifactId, int]] = attrs.Factory(dict)
    op_id: OpId | None = None
    status: str = _rules.STATUS_RUNNING
    created: int = attrs.Factory(_rules.now_millis)
    updated: int = 0


def _stored_copy(env: EventEnvelope) -> EventEnvelope:
    try:
        event = decode_event(encode_event(env.event))
    except Exception as exc:
        raise StorageError(f"event {env.seq} of run {env.run_id} cannot be encoded: {exc}",
                           code=CODE_INVALID_ENVELOPES) from exc
    return EventEnvelope(env.run_id, env.seq, env.ts_millis, event)


class MemoryStore:
    """Events, artifacts and fact bindings in process memory. Nothing is durable.

    Each operation is atomic with respect to other tasks (one lock), which mirrors the
    transactions of the SQLite store.
    """

    def __init__(self) -> None:
        self._runs: dict[RunId, _Run] = {}
        self._artifacts: dict[ArtifactId, tuple[ArtifactKind, bytes]] = {}
        self._lock = asyncio.Lock()
        self._closed = False
        # Every event in commit order (None where a run was pruned): follow's positions.
        self._log: list[EventEnvelope | None] = []
        self._hub: Hub | None = None

    async def __aenter__(self) -> MemoryStore:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    async def close(self) -> None:
        self._closed = True
        if self._hub is not None:
            await self._hub.close()

    def _check_open(self) -> None:
        if self._closed:
            raise StorageError("store is closed", code=CODE_STORE_CLOSED)

    # events

    async def head_seq(self, run_id: RunId) -> int:
        run_id = _rules.run_id_of(run_id)
        self._check_open()
        run = self._runs.get(run_id)
        return len(run.events) if run else 0

    async def append(self, run_id: RunId, expected_seq: int,
                     envelopes: Sequence[EventEnvelope]) -> int:
        envelopes = list(envelopes)
        _rules.check_envelopes(run_id, expected_seq, envelopes)
        self._check_open()
        # Keep what SQLite keeps: a decoded copy of the stored CBOR, so that a caller mutating
        # its payloads later cannot change the stream, and unencodable payloads fail the same.
        envelopes = [_stored_copy(env) for env in envelopes]
        scan = _rules.scan_events(run_id, envelopes)
        async with self._lock:
            run = self._runs.get(run_id)
            head = len(run.events) if run else 0
            if head != expected_seq:
                raise _rules.head_moved(run_id, expected_seq, head)
            if not envelopes:
                return head
            bound = dict(run.facts) if run else {}
            for key, (pid, seq) in scan.bindings.items():
                if key in bound:
                    if bound[key][0] != pid:
                        raise _rules.binding_conflict(run_id, key, bound[key][0], pid)
                else:
                    bound[key] = (pid, seq)
            for ref, seq in scan.refs.items():
                if ref not in self._artifacts:
                    raise _rules.missing_artifact(run_id, seq, ref)
            if not envelopes:
                return head
            if run is None:
                run = self._runs[run_id] = _Run()
            self._commit(run, envelopes)
            run.facts = bound
            return len(run.events)

    def _commit(self, run: _Run, envelopes: list[EventEnvelope]) -> None:
        self._log.extend(envelopes)
        if self._hub is not None:
            self._hub.notify()
        for env in envelopes:
            run.events.append(env)
            op_id = _rules.op_id_of(env.event)
            if op_id is not None:
                run.op_id = OpId(op_id)
            run.status = _rules.status_after(env.event) or run.status
        run.updated = _rules.now_millis()

    async def read_range(self, run_id: RunId, from_seq: int = 1,
                         to_seq: int | None = None) -> list[EventEnvelope]:
        run_id = _rules.run_id_of(run_id)
        first, last = _rules.range_of(from_seq, to_seq)
        self._check_open()
        run = self._runs.get(run_id)
        if run is None:
            return []
        start = first - 1
        stop = max(min(last, len(run.events)), start)
        return run.events[start:stop]

    async def iter_events(self, run_id: RunId, from_seq: int = 1, to_seq: int | None = None,
                          *, page_size: int = 1000) -> AsyncIterator[EventEnvelope]:
        _rules.page_size_of(page_size)
        for env in await self.read_range(run_id, from_seq, to_seq):
            yield env

    async def list_runs(self, *, after: RunId | str | None = None, limit: int | None = None,
                        newest_first: bool = False) -> list[RunSummary]:
        self._check_open()
        after_id, count = _paging.check_list_runs(after, limit, newest_first)
        if after_id is not None and after_id not in self._runs:
            raise _paging.unknown_after(after_id)
        ids = reversed(self._runs) if newest_first else iter(self._runs)  # creation order
        if after_id is not None:
            for rid in ids:
                if rid == after_id:
                    break
        out: list[RunSummary] = []
        for rid in ids:
            if count is not None and len(out) >= count:
                break
            r = self._runs[rid]
            out.append(RunSummary(run_id=rid, op_id=r.op_id, status=r.status,
                                  head_seq=len(r.events), created_millis=r.created,
                                  updated_millis=r.updated or r.created))
        return out

    def follow(self, run_id: RunId | str | None = None, *, after: After = None) -> Follower:
        """Events as they are appended: one run's (cursor: seq) or every run's in commit
        order (cursor: the count of events appended before); see :mod:`mfm_store.follow`."""
        self._check_open()
        from ._memory_follow import follower
        return follower(self, run_id, after)

    async def prune(self, run_ids: Iterable[RunId | str] | None = None, *,
                    finished_before: int | float | datetime | None = None,
                    keep_last: int | None = None,
                    archive: str | os.PathLike[str] | Store | None = None,
                    dry_run: bool = False,
                    artifact_min_age_seconds: float = 60.0) -> PruneReport:
        """As :meth:`SqliteStore.prune <mfm_store.sqlite.SqliteStore.prune>`: finished runs
        and then the artifacts nothing references any more (artifacts have no age here:
        ``artifact_min_age_seconds`` is accepted for the same signature)."""
        from ._memory_follow import prune

        return await prune(self, run_ids, finished_before=finished_before,
                           keep_last=keep_last, archive_to=archive, dry_run=dry_run)

    # artifacts

    async def put(self, kind: ArtifactKind, data: bytes) -> ArtifactId:
        data = _rules.check_artifact(kind, data)
        self._check_open()
        aid = artifact_id_for_bytes(data)
        self._artifacts.setdefault(aid, (kind, data))
        return aid

    async def get(self, artifact_id: ArtifactId) -> bytes:
        aid = _rules.artifact_id_of(artifact_id)
        self._check_open()
        try:
            return self._artifacts[aid][1]
        except KeyError:
            raise NotFoundError(f"artifact not found: {artifact_id}") from None

    async def exists(self, artifact_id: ArtifactId) -> bool:
        aid = _rules.artifact_id_of(artifact_id)
        self._check_open()
        return aid in self._artifacts

    async def missing(self, artifact_ids: Iterable[ArtifactId]) -> set[ArtifactId]:
        wanted = set(map(_rules.artifact_id_of, artifact_ids))
        self._check_open()
        return {a for a in wanted if a not in self._artifacts}

    # facts

    async def record_fact(self, run_id: RunId, key: FactKey, data: bytes, *,
                          expected_seq: int | None = None,
                          refs: Sequence[ArtifactId] = ()) -> FactBinding:
        run_id, key = _rules.check_bind(run_id, key, expected_seq)
        refs = _rules.check_refs(refs) if refs else ()
        data = _rules.check_artifact(ArtifactKind.FACT_PAYLOAD, data)
        self._check_open()
        return await self._bind(run_id, key, artifact_id_for_bytes(data), expected_seq, data,
                                refs)

    async def bind_fact(self, run_id: RunId, key: FactKey, payload_id: ArtifactId, *,
                        expected_seq: int | None = None,
                        refs: Sequence[ArtifactId] = ()) -> FactBinding:
        run_id, key = _rules.check_bind(run_id, key, expected_seq)
        refs = _rules.check_refs(refs) if refs else ()
        payload_id = _rules.artifact_id_of(payload_id)
        self._check_open()
        return await self._bind(run_id, key, payload_id, expected_seq, None, refs)

    async def _bind(self, run_id: RunId, key: FactKey, payload_id: ArtifactId,
                    expected_seq: int | None, data: bytes | None,
                    refs: Sequence[ArtifactId]) -> FactBinding:
        async with self._lock:
            run = self._runs.get(run_id)
            if run is not None and key in run.facts:
                pid, seq = run.facts[key]
                return FactBinding(pid, False, seq)
            if data is None and payload_id not in self._artifacts:
                raise NotFoundError(f"fact payload artifact not found: {payload_id}")
            for ref in refs:
                if ref not in self._artifacts:
                    raise NotFoundError(f"fact {key!r} refers to artifact {ref}, which is not "
                                        "in the store")
            head = len(run.events) if run else 0
            if expected_seq is not None and head != expected_seq:
                raise _rules.head_moved(run_id, expected_seq, head)
            if data is not None:
                self._artifacts.setdefault(payload_id, (ArtifactKind.FACT_PAYLOAD, data))
            if run is None:
                run = self._runs[run_id] = _Run()
            seq = len(run.events) + 1
            env = EventEnvelope(run_id, seq, None,
                                _rules.fact_recorded_event(key, payload_id, refs))
            self._commit(run, [env])
            run.facts[key] = (payload_id, seq)
            return FactBinding(payload_id, True, seq)

    async def get_fact(self, run_id: RunId, key: FactKey) -> ArtifactId | None:
        run_id = _rules.run_id_of(run_id)
        wanted = _rules.lookup_key(key)
        self._check_open()
        run = self._runs.get(run_id)
        entry = run.facts.get(wanted) if run and wanted is not None else None
        return entry[0] if entry else None

    async def facts(self, run_id: RunId) -> dict[FactKey, ArtifactId]:
        run_id = _rules.run_id_of(run_id)
        self._check_open()
        run = self._runs.get(run_id)
        return {k: v[0] for k, v in run.facts.items()} if run else {}
