"""Replay IO (SPEC §6): serve a run's recorded facts, never the outside world."""

from __future__ import annotations

from ._io_common import (
    KIND_NOW_MILLIS,
    KIND_RANDOM_BYTES,
    DerivedKeys,
    JsonValue,
    check_attempt,
    check_byte_count,
    load_bytes,
    load_json,
    random_value,
    time_value,
)
from .errors import MissingFactError, MissingFactKeyError
from .facts import FactIndex
from .ids import ArtifactId, FactKey, RunId, StateId
from .io_types import IoCall, IoResult
from .stores import ArtifactStore

__all__ = ["ReplayIo"]


class ReplayIo:
    """An :class:`~mfm_store.live_io.IoProvider` that answers from recorded facts only.

    It has no transport and writes nothing (no artifact, no binding, no event). Built with the
    same ``run_id``, ``state_id`` and ``attempt`` as the recorded attempt, it derives the same
    time and random keys as ``LiveIo`` did (one ordinal per ReplayIo, consumed even when the
    fact is missing).

    Raises ``MissingFactKeyError`` (code ``missing_fact_key``) for a call without a fact key;
    ``MissingFactError`` (code ``missing_fact``, ``.key``, ``retryable`` =
    ``missing_fact_retryable``) when the key is not bound; ``IoError`` codes
    ``fact_payload_get_failed`` / ``fact_payload_decode_failed`` when the payload cannot be
    read or is not JSON, and ``fact_payload_invalid`` when a time fact is not a u64 or a random
    fact has the wrong length.
    """

    def __init__(self, run_id: RunId, state_id: StateId | str, attempt: int,
                 artifacts: ArtifactStore, facts: FactIndex,
                 missing_fact_retryable: bool = False) -> None:
        self.run_id = run_id
        self.state_id = StateId(state_id)
        self.attempt = check_attempt(attempt)
        self.missing_fact_retryable = missing_fact_retryable
        self._artifacts = artifacts
        self._facts = facts
        self._keys = DerivedKeys(run_id, self.state_id, self.attempt)

    @property
    def artifacts(self) -> ArtifactStore:
        """The artifact store facts are read from (e.g. for bodies a fact's payload names)."""
        return self._artifacts

    async def _bound(self, key: FactKey) -> ArtifactId:
        payload_id = await self._facts.get(key)
        if payload_id is None:
            raise MissingFactError(key, retryable=self.missing_fact_retryable)
        return payload_id

    async def call(self, call: IoCall) -> IoResult:
        if call.fact_key is None:
            raise MissingFactKeyError("missing fact key for deterministic IO in replay mode")
        payload_id = await self._bound(call.fact_key)
        return IoResult(await load_json(self._artifacts, payload_id), payload_id)

    async def record_value(self, key: FactKey, value: JsonValue) -> ArtifactId:
        """The id already bound to ``key`` (``value`` is not compared, as in mfm-machine 0.1.0)."""
        return await self._bound(key)

    async def get_recorded_fact(self, key: FactKey) -> ArtifactId | None:
        return await self._facts.get(key)

    async def now_millis(self) -> int:
        payload_id = await self._bound(self._keys.next(KIND_NOW_MILLIS))
        return time_value(await load_json(self._artifacts, payload_id))

    async def random_bytes(self, n: int) -> bytes:
        check_byte_count(n)
        payload_id = await self._bound(self._keys.next(KIND_RANDOM_BYTES))
        return random_value(await load_bytes(self._artifacts, payload_id), n)
