"""Backend-neutral store contract (SPEC §5.1): protocols and the values they exchange.

Every backend (``MemoryStore``, ``SqliteStore``, later PostgreSQL) implements :class:`Store`
and passes the same contract suite in ``tests/test_contract.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any, ClassVar, Protocol, runtime_checkable

import attrs

from .errors import CODE_INVALID_ARGUMENT, CODE_RUN_NOT_FOUND, NotFoundError, StorageError
from .events import EventEnvelope
from .ids import ArtifactId, FactKey, OpId, RunId

__all__ = [
    "ArtifactKind",
    "ArtifactStore",
    "EventStore",
    "FactBinding",
    "FactStore",
    "FollowableStore",
    "ProgressFn",
    "PrunableStore",
    "RunSummary",
    "Store",
    "iter_runs",
]

ProgressFn = Callable[[str, int, "int | None"], None]
"""``progress(phase, n, total)``: ``n`` more units of ``phase`` (out of ``total``) are done.

Called with ``n = 0`` when a phase starts. Phases: ``"export"`` (units: lines), ``"check"`` and
``"import"`` (units: bytes of the export), ``"verify"`` (units: rows checked)."""

_NAMED_KINDS = ("Manifest", "ContextSnapshot", "FactPayload", "SecretPayload", "Output")


@attrs.frozen
class ArtifactKind:
    """What an artifact is for. Metadata only: never part of its id.

    ``to_json()`` gives the Rust spelling: ``"FactPayload"`` or ``{"Other": "name"}``.
    """

    name: str
    is_other: bool = False

    MANIFEST: ClassVar[ArtifactKind]
    CONTEXT_SNAPSHOT: ClassVar[ArtifactKind]
    FACT_PAYLOAD: ClassVar[ArtifactKind]
    SECRET_PAYLOAD: ClassVar[ArtifactKind]
    OUTPUT: ClassVar[ArtifactKind]

    @classmethod
    def other(cls, name: str) -> ArtifactKind:
        if not isinstance(name, str):
            raise ValueError(f"invalid artifact kind name: {name!r}")
        return cls(name, True)

    def to_json(self) -> str | dict[str, str]:
        return {"Other": self.name} if self.is_other else self.name

    @classmethod
    def from_json(cls, obj: Any) -> ArtifactKind:
        if isinstance(obj, str) and obj in _NAMED_KINDS:
            return cls(obj)
        if isinstance(obj, dict) and len(obj) == 1 and isinstance(obj.get("Other"), str):
            return cls.other(obj["Other"])
        raise ValueError(f"invalid artifact kind: {obj!r}")

    def __str__(self) -> str:
        return f"Other:{self.name}" if self.is_other else self.name

    @classmethod
    def parse(cls, text: str) -> ArtifactKind:
        """Inverse of ``str()`` (the form stored in the SQLite ``kind`` column)."""
        if text.startswith("Other:"):
            return cls.other(text[len("Other:"):])
        return cls.from_json(text)


ArtifactKind.MANIFEST = ArtifactKind("Manifest")
ArtifactKind.CONTEXT_SNAPSHOT = ArtifactKind("ContextSnapshot")
ArtifactKind.FACT_PAYLOAD = ArtifactKind("FactPayload")
ArtifactKind.SECRET_PAYLOAD = ArtifactKind("SecretPayload")
ArtifactKind.OUTPUT = ArtifactKind("Output")


@attrs.frozen
class FactBinding:
    """Result of :meth:`FactStore.bind_fact`.

    ``payload_id`` is the effective (winning) payload; ``inserted`` says whether this call won;
    ``seq`` is the seq of the ``fact_recorded`` event of the winning binding.
    """

    payload_id: ArtifactId
    inserted: bool
    seq: int


@attrs.frozen(kw_only=True)
class RunSummary:
    """One row of :meth:`EventStore.list_runs`. Times are Unix milliseconds (store clock).

    ``status`` is ``"running"`` until a ``RunCompleted`` event, then ``"completed"``,
    ``"failed"`` or ``"cancelled"``. ``op_id`` is ``None`` until a ``RunStarted`` event.
    """

    run_id: RunId
    op_id: OpId | None
    status: str
    head_seq: int
    created_millis: int
    updated_millis: int


@runtime_checkable
class EventStore(Protocol):
    """Append-only, per-run event streams with optimistic concurrency."""

    async def head_seq(self, run_id: RunId) -> int:
        """Last seq of the run; ``0`` for an unknown run."""
        ...

    async def append(self, run_id: RunId, expected_seq: int,
                     envelopes: Sequence[EventEnvelope]) -> int:
        """Append atomically and return the new head. Durable on return.

        Raises ``StorageError`` (code ``invalid_envelopes``) unless every envelope carries
        ``run_id`` and the seqs run ``expected_seq+1 ...`` contiguously (checked first);
        ``ConcurrencyError`` if the head is not ``expected_seq``; ``ConcurrencyError`` with code
        ``fact_binding_conflict`` if a ``fact_recorded`` event would bind an already bound key
        to a different payload. In every error case nothing is written. A ``fact_recorded``
        event binding its key (first time, or again to the same payload) updates the bindings
        in the same transaction.

        Also refused, nothing written: a secret in a domain event's name or payload or in a
        failure's message or details (``secrets_detected``); a ``fact_recorded`` payload other
        than ``{"key", "payload_id", "meta"}`` with a valid key and id (``invalid_envelopes``);
        an event naming an artifact the store does not hold (``NotFoundError``
        ``artifact_not_found``, checked in the same transaction).
        """
        ...

    async def read_range(self, run_id: RunId, from_seq: int = 1,
                         to_seq: int | None = None) -> list[EventEnvelope]:
        """Events ``from_seq..=to_seq`` ascending; ``from_seq`` 0 acts as 1; unknown run → []."""
        ...

    def iter_events(self, run_id: RunId, from_seq: int = 1, to_seq: int | None = None,
                    *, page_size: int = 1000) -> AsyncIterator[EventEnvelope]:
        """Like :meth:`read_range`, streamed in pages with bounded memory."""
        ...

    async def list_runs(self, *, after: RunId | str | None = None, limit: int | None = None,
                        newest_first: bool = False) -> list[RunSummary]:
        """Runs in creation order, oldest first (``newest_first``: newest first), without
        scanning events; every run when called without arguments.

        Paged: at most ``limit`` runs, those that come after the run ``after`` in that order
        (pass the last run of a page to get the next; :func:`iter_runs` walks them
        all). A run's place never changes while it exists. Raises ``StorageError``
        ``invalid_argument`` for a ``limit`` that is not a positive int or a ``newest_first``
        that is not a bool, ``invalid_id`` for a malformed ``after``, ``NotFoundError``
        ``run_not_found`` if the store holds no run ``after`` (e.g. pruned meanwhile).
        """
        ...


@runtime_checkable
class ArtifactStore(Protocol):
    """Content-addressed blobs: the id is the SHA-256 of the bytes."""

    async def put(self, kind: ArtifactKind, data: bytes) -> ArtifactId:
        """Store ``data`` once and return its id; idempotent; the first kind is kept.

        ``data`` must be bytes-like (``invalid_argument``). An artifact of a JSON kind whose
        bytes parse as JSON is refused if it holds a secret (``secrets_detected``). A put of
        stored bytes refreshes their age for ``gc``.
        """
        ...

    async def get(self, artifact_id: ArtifactId) -> bytes:
        """Raises ``NotFoundError`` if absent, ``CorruptionError`` if the bytes fail checks."""
        ...

    async def exists(self, artifact_id: ArtifactId) -> bool: ...

    async def missing(self, artifact_ids: Iterable[ArtifactId]) -> set[ArtifactId]:
        """Those of ``artifact_ids`` the store does not hold, asked in one query (callers
        batch a few thousand ids at most). An invalid id raises ``invalid_id``."""
        ...


@runtime_checkable
class FactStore(Protocol):
    """Per-run, first-writer-wins bindings from fact keys to payload artifacts."""

    async def bind_fact(self, run_id: RunId, key: FactKey, payload_id: ArtifactId, *,
                        expected_seq: int | None = None,
                        refs: Sequence[ArtifactId] = ()) -> FactBinding:
        """Bind ``key`` to ``payload_id`` unless already bound, across tasks and processes.

        In one transaction: insert the binding and append a ``fact_recorded`` event at the
        run's head + 1 (``inserted=True``); or, if the key is bound, write nothing and return
        the existing binding (``inserted=False``). Raises ``NotFoundError`` if the payload
        artifact does not exist. With ``expected_seq``, an unbound key is bound only if the
        head is ``expected_seq`` (else ``ConcurrencyError``, nothing written): a writer that
        owns the run's head uses it to stay the only writer. Durable on return.

        ``refs`` declares other artifacts the payload depends on (e.g. an HTTP body artifact
        its JSON names): stored in the event as ``meta.refs``, they must exist when the
        binding is written (else ``NotFoundError``, nothing written) and are kept, copied
        and checked like every reference (gc, export, push, fork, verify).
        """
        ...

    async def record_fact(self, run_id: RunId, key: FactKey, data: bytes, *,
                          expected_seq: int | None = None,
                          refs: Sequence[ArtifactId] = ()) -> FactBinding:
        """Store ``data`` (a ``FactPayload`` artifact) and bind ``key`` to it, as one write.

        The artifact, the binding and its ``fact_recorded`` event share one transaction (one
        fsync instead of two for ``put`` then ``bind_fact``). If ``key`` is already bound,
        nothing is written, not even the artifact, and the existing binding is returned.
        ``expected_seq`` and ``refs`` as for :meth:`bind_fact`. Durable on return.
        """
        ...

    async def get_fact(self, run_id: RunId, key: FactKey) -> ArtifactId | None: ...

    async def facts(self, run_id: RunId) -> dict[FactKey, ArtifactId]: ...


@runtime_checkable
class Store(EventStore, ArtifactStore, FactStore, Protocol):
    """Everything a run needs from one backend. Stores are async context managers;
    ``close()`` is idempotent and finishes pending work."""

    async def close(self) -> None: ...


@runtime_checkable
class FollowableStore(Protocol):
    """A store whose committed events can be followed as they land (every backend here).

    ``follow(run_id=None, *, after=None)`` returns a :class:`mfm_store.follow.Follower`: an
    async iterator of the events committed by any process, one run's in seq order or every
    run's (on SQLite and in memory: in commit order), resumable exactly after a
    :class:`~mfm_store.follow.FollowCursor` (``after``); closing it, or the store, ends it.
    See README, "Following runs"."""

    def follow(self, run_id: RunId | None = None, *,
               after: Any = None) -> AsyncIterator[EventEnvelope]: ...


@runtime_checkable
class PrunableStore(Protocol):
    """A store that can delete finished runs (every backend here).

    ``prune(run_ids=None, *, finished_before=None, keep_last=None, archive=None,
    dry_run=False)`` returns a :class:`mfm_store.retention.PruneReport`; a running run is
    never pruned; with ``archive`` the runs are copied and checked before anything is deleted.
    See README, "Keeping the file small"."""

    async def prune(self, run_ids: Any = None, *, finished_before: Any = None,
                    keep_last: int | None = None, archive: Any = None,
                    dry_run: bool = False) -> Any: ...


async def iter_runs(store: EventStore, *, page_size: int = 1000,
                    newest_first: bool = False) -> AsyncIterator[RunSummary]:
    """Every run of ``store`` in creation order (or newest first), read ``page_size`` runs at
    a time with ``list_runs(after=..., limit=...)``: memory stays bounded by one page.

    Runs created meanwhile are seen when their place is still ahead (oldest first: always).
    A run pruned meanwhile that ended a page is stepped over: the next page starts after
    the last run of that page that still exists (only if every run of the page is gone
    does the next page raise ``NotFoundError``, ``run_not_found``). ``page_size`` must be
    a positive int (``invalid_argument``)."""
    if isinstance(page_size, bool) or not isinstance(page_size, int) or page_size < 1:
        raise StorageError(f"page_size must be a positive integer, got {page_size!r}",
                           code=CODE_INVALID_ARGUMENT)
    seen: list[RunId] = []  # the previous page's runs, in order
    while True:
        page = await _page_after(store, seen, page_size, newest_first)
        for summary in page:
            yield summary
        if len(page) < page_size:
            return
        seen = [summary.run_id for summary in page]


async def _page_after(store: EventStore, seen: list[RunId], limit: int,
                      newest_first: bool) -> list[RunSummary]:
    """The ``limit`` runs after the last of ``seen`` that the store still holds (the first
    page when ``seen`` is empty). The runs of ``seen`` after that one are gone, so none is
    repeated; no run can take a place between two others."""
    if not seen:
        return await store.list_runs(limit=limit, newest_first=newest_first)
    for anchor in reversed(seen[1:]):
        try:
            return await store.list_runs(after=anchor, limit=limit, newest_first=newest_first)
        except NotFoundError as exc:
            if exc.info.code != CODE_RUN_NOT_FOUND:
                raise
    return await store.list_runs(after=seen[0], limit=limit, newest_first=newest_first)
