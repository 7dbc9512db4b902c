"""What a state handler writes besides its context: domain events and fact bindings.

:class:`EventRecorder` is handed to handlers. It applies the run's event profile first
(``Minimal`` keeps only ``fact_recorded`` and drops everything else silently), then refuses
events whose name or payload holds a secret, or whose payload is not JSON, before anything is
written. :class:`EngineFactRecorder` is the fact recorder the engine gives ``LiveIo``: it binds
facts through the run's writer, so the writer keeps track of the head. Fact bindings are
written whatever the profile.
"""

from __future__ import annotations

from collections.abc import Sequence

from .._io_common import check_fact_key
from ..canonical import json_contains_secrets, string_contains_secrets
from ..events import DOMAIN_FACT_RECORDED, DomainEvent, encode_event
from ..ids import ArtifactId, FactKey
from ..stores import FactBinding
from .errors import CODE_DOMAIN_EVENT_INVALID, CODE_SECRETS_DETECTED, RunError
from .manifest import EventProfile
from .writer import RunWriter

__all__ = ["EngineFactRecorder", "EventRecorder"]


class EventRecorder:
    """Emits a handler's domain events into its run's stream, filtered by the event profile."""

    def __init__(self, writer: RunWriter, profile: EventProfile) -> None:
        self._writer = writer
        self._profile = profile

    def _keeps(self, event: DomainEvent) -> bool:
        return event.name == DOMAIN_FACT_RECORDED or self._profile.keeps_domain_events

    @staticmethod
    def _check(event: DomainEvent) -> None:
        if not isinstance(event, DomainEvent):
            raise RunError(f"not a DomainEvent: {type(event).__name__}",
                           code=CODE_DOMAIN_EVENT_INVALID)
        if not isinstance(event.name, str):
            raise RunError(f"domain event name is not a string: {event.name!r}",
                           code=CODE_DOMAIN_EVENT_INVALID)
        if event.name == DOMAIN_FACT_RECORDED:
            # Facts are recorded through IO (LiveIo); a handler's own fact_recorded could bind
            # a key behind the fact index's back or conflict with a binding.
            raise RunError("fact_recorded events are written by the engine, not by handlers",
                           code=CODE_DOMAIN_EVENT_INVALID)
        if string_contains_secrets(event.name) or json_contains_secrets(event.payload):
            raise RunError("domain event contained secrets (policy forbids persisting secrets)",
                           code=CODE_SECRETS_DETECTED)
        try:
            encode_event(event)  # exactly what the store will accept
        except (ValueError, UnicodeError, RecursionError) as exc:
            raise RunError(f"domain event payload is not storable JSON: {exc}",
                           code=CODE_DOMAIN_EVENT_INVALID) from None

    async def emit(self, event: DomainEvent) -> None:
        """Append one event (durable on return), or drop it if the profile says so.

        Raises ``RunError`` (``secrets_detected`` / ``domain_event_invalid``) and writes
        nothing if the event may not be stored; store errors propagate.
        """
        await self.emit_many([event])

    async def emit_many(self, events: Sequence[DomainEvent]) -> None:
        """Check every event first, then append the kept ones in one atomic write."""
        kept = [e for e in events if not isinstance(e, DomainEvent) or self._keeps(e)]
        for event in kept:
            self._check(event)
        await self._writer.append(kept)


class EngineFactRecorder:
    """Records fact bindings durably through the run's writer (``bind_fact``).

    Returns the store's :class:`FactBinding`: its ``payload_id`` is the winner's if another
    writer bound the key first. Refuses a key holding a secret (``IoError``
    ``secrets_detected``, nothing written). Store errors, including ``ConcurrencyError`` for
    a stale writer, propagate unchanged.
    """

    def __init__(self, writer: RunWriter) -> None:
        self._writer = writer

    @property
    def payload_store(self) -> object:
        return self._writer.store

    async def record_fact_binding(self, key: FactKey, payload_id: ArtifactId, *,
                                  refs: Sequence[ArtifactId] = ()) -> FactBinding:
        check_fact_key(key)
        return await self._writer.bind_fact(key, payload_id, refs)

    async def record_fact_payload(self, key: FactKey, payload_id: ArtifactId,
                                  data: bytes, *,
                                  refs: Sequence[ArtifactId] = ()) -> FactBinding:
        """Store ``data`` and bind ``key`` to it in one write (see ``PayloadFactRecorder``)."""
        check_fact_key(key)
        return await self._writer.record_fact(key, data, refs)


