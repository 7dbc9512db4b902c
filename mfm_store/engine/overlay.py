"""A composite store for replaying a run over a store that must not change.

:class:`OverlayStore` reads artifacts from a read-only *base* (the copied file) and from a
writable *overlay*; every write (events, fact bindings, artifacts) goes to the overlay. Events
and fact bindings are read from the overlay only, so a replay's new stream never mixes with the
recorded one even though it uses the same run id.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from types import TracebackType

from .. import _rules
from ..events import EventEnvelope
from ..ids import ArtifactId, FactKey, RunId
from ..memory import MemoryStore
from ..stores import ArtifactKind, ArtifactStore, FactBinding, RunSummary, Store

__all__ = ["OverlayStore"]


class OverlayStore:
    """Artifacts: overlay, then ``base``; events, bindings and every write: overlay only.

    ``base`` is only ever read (``get``, ``exists``) and is not closed by :meth:`close`; the
    overlay (a new :class:`MemoryStore` by default) is owned and closed.
    """

    def __init__(self, base: ArtifactStore, overlay: Store | None = None) -> None:
        self.base = base
        self.overlay: Store = MemoryStore() if overlay is None else overlay

    async def __aenter__(self) -> OverlayStore:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    async def close(self) -> None:
        await self.overlay.close()

    async def head_seq(self, run_id: RunId) -> int:
        return await self.overlay.head_seq(run_id)

    async def append(self, run_id: RunId, expected_seq: int,
                     envelopes: Sequence[EventEnvelope]) -> int:
        envelopes = list(envelopes)
        for env in envelopes:
            if not isinstance(env, EventEnvelope):
                continue  # the overlay refuses it
            binding = _rules.fact_binding_of(env.event)
            refs = list(_rules.artifact_refs(env.event))
            if binding is not None:
                refs.append(binding[1])
            for ref in refs:
                await self._localise(ArtifactId(ref))
        return await self.overlay.append(run_id, expected_seq, envelopes)

    async def _localise(self, artifact_id: ArtifactId,
                        kind: ArtifactKind = ArtifactKind.CONTEXT_SNAPSHOT) -> None:
        """Copy an artifact of the base into the overlay (which refuses events and bindings
        naming artifacts it does not hold); one the base lacks is left for it to refuse."""
        if await self.overlay.exists(artifact_id) or not await self.base.exists(artifact_id):
            return
        # Bytes read back from a store: already checked when they were stored there.
        await self.overlay.put(kind, _rules.CheckedBytes(await self.base.get(artifact_id)))

    async def read_range(self, run_id: RunId, from_seq: int = 1,
                         to_seq: int | None = None) -> list[EventEnvelope]:
        return await self.overlay.read_range(run_id, from_seq, to_seq)

    def iter_events(self, run_id: RunId, from_seq: int = 1, to_seq: int | None = None,
                    *, page_size: int = 1000) -> AsyncIterator[EventEnvelope]:
        return self.overlay.iter_events(run_id, from_seq, to_seq, page_size=page_size)

    async def list_runs(self, *, after: RunId | str | None = None, limit: int | None = None,
                        newest_first: bool = False) -> list[RunSummary]:
        return await self.overlay.list_runs(after=after, limit=limit, newest_first=newest_first)

    async def put(self, kind: ArtifactKind, data: bytes) -> ArtifactId:
        return await self.overlay.put(kind, data)

    async def get(self, artifact_id: ArtifactId) -> bytes:
        if await self.overlay.exists(artifact_id):
            return await self.overlay.get(artifact_id)
        return await self.base.get(artifact_id)

    async def exists(self, artifact_id: ArtifactId) -> bool:
        return await self.overlay.exists(artifact_id) or await self.base.exists(artifact_id)

    async def missing(self, artifact_ids: Iterable[ArtifactId]) -> set[ArtifactId]:
        lacking = await self.overlay.missing(artifact_ids)
        return await self.base.missing(lacking) if lacking else lacking

    async def bind_fact(self, run_id: RunId, key: FactKey, payload_id: ArtifactId, *,
                        expected_seq: int | None = None,
                        refs: Sequence[ArtifactId] = ()) -> FactBinding:
        # The payload may live in the base only; the overlay's binding needs it locally.
        await self._localise(ArtifactId(payload_id), ArtifactKind.FACT_PAYLOAD)
        for ref in refs:
            await self._localise(ArtifactId(ref), _rules.DECLARED_REF_KIND)
        return await self.overlay.bind_fact(run_id, key, payload_id, expected_seq=expected_seq,
                                            refs=refs)

    async def record_fact(self, run_id: RunId, key: FactKey, data: bytes, *,
                          expected_seq: int | None = None,
                          refs: Sequence[ArtifactId] = ()) -> FactBinding:
        for ref in refs:
            await self._localise(ArtifactId(ref), _rules.DECLARED_REF_KIND)
        return await self.overlay.record_fact(run_id, key, data, expected_seq=expected_seq,
                                              refs=refs)

    async def get_fact(self, run_id: RunId, key: FactKey) -> ArtifactId | None:
        return await self.overlay.get_fact(run_id, key)

    async def facts(self, run_id: RunId) -> dict[FactKey, ArtifactId]:
        return await self.overlay.facts(run_id)
