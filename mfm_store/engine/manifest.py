"""Run manifests and run configuration, in mfm-machine's serde shape.

A run's manifest is stored as a canonical-JSON artifact (kind ``Manifest``) whose id is recorded
in ``RunStarted``; resume re-reads it and checks that its bytes still hash to that id. The
default manifest for op ``op``, version ``"0"`` is byte for byte the Rust crate's reference test
manifest (id ``8a3bbc67...``).

Durations are kept as whole ``secs`` + ``nanos`` (the Rust ``Duration`` form) so that a manifest
written by the Rust crate round-trips exactly.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable
from typing import Any, ClassVar

import attrs

from .._rules import CheckedBytes
from ..canonical import artifact_id_for_bytes, canonical_json_bytes
from ..errors import FloatNotAllowedError, SecretsNotAllowedError
from ..ids import ArtifactId, OpId
from ..stores import ArtifactKind, ArtifactStore
from .errors import (
    CODE_MANIFEST_CORRUPT,
    CODE_MANIFEST_DECODE_FAILED,
    CODE_MANIFEST_DESERIALIZE_FAILED,
    CODE_MANIFEST_NOT_CANONICAL,
    CODE_SECRETS_DETECTED,
    CODE_UNSUPPORTED_EXECUTION_MODE,
    ContextError,
    InvalidPlanError,
)

__all__ = [
    "DEFAULT_NIX_FLAKE_ALLOWLIST",
    "BuildProvenance",
    "ContextCheckpointing",
    "Duration",
    "EventProfile",
    "ExecutionMode",
    "ExponentialBackoff",
    "FixedBackoff",
    "IoMode",
    "RetryPolicy",
    "RunConfig",
    "RunManifest",
    "load_manifest",
    "manifest_bytes",
    "store_manifest",
]

DEFAULT_NIX_FLAKE_ALLOWLIST = ("github:willyrgf/mfm",)
_NANOS = 1_000_000_000
_U64_MAX = 2**64 - 1


def _is_uint(value: Any, limit: int = _U64_MAX) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= limit


def tuple_of_str(value: Iterable[str]) -> tuple[str, ...]:
    """Converter: a collection of strings (not one string) as a tuple; ``TypeError`` else."""
    if isinstance(value, str):
        raise TypeError("expected a list of strings, got a string")
    items = tuple(value)
    if not all(isinstance(v, str) for v in items):
        raise TypeError(f"expected a list of strings, got {items!r}")
    return items


@attrs.frozen(order=True)
class Duration:
    """A non-negative duration as ``secs`` + ``nanos`` (``nanos < 10**9``), like Rust's."""

    secs: int = 0
    nanos: int = 0

    def __attrs_post_init__(self) -> None:
        if not _is_uint(self.secs) or not _is_uint(self.nanos, _NANOS - 1):
            raise ValueError(f"invalid duration: secs={self.secs!r} nanos={self.nanos!r}")

    @classmethod
    def from_nanos(cls, nanos: int) -> Duration:
        return cls(nanos // _NANOS, nanos % _NANOS)

    @classmethod
    def from_millis(cls, millis: int) -> Duration:
        return cls.from_nanos(millis * 1_000_000)

    @property
    def total_nanos(self) -> int:
        return self.secs * _NANOS + self.nanos

    def total_seconds(self) -> float:
        return self.total_nanos / _NANOS

    def to_json(self) -> dict[str, int]:
        return {"secs": self.secs, "nanos": self.nanos}

    @classmethod
    def from_json(cls, obj: Any) -> Duration:
        return cls(obj["secs"], obj["nanos"])


@attrs.frozen
class FixedBackoff:
    """Wait the same ``delay`` before every retry."""

    delay: Duration = Duration()

    def delay_for(self, attempt: int) -> Duration:
        """Delay before retrying after attempt number ``attempt`` failed."""
        return self.delay

    def to_json(self) -> dict[str, Any]:
        return {"Fixed": {"delay": self.delay.to_json()}}


@attrs.frozen
class ExponentialBackoff:
    """Wait ``min(base_delay * 2**min(attempt, 31), max_delay)`` after attempt ``attempt``.

    The first retry (after attempt 0) waits ``base_delay``.
    """

    base_delay: Duration
    max_delay: Duration

    def delay_for(self, attempt: int) -> Duration:
        grown = self.base_delay.total_nanos * (2 ** min(max(attempt, 0), 31))
        return Duration.from_nanos(min(grown, self.max_delay.total_nanos))

    def to_json(self) -> dict[str, Any]:
        return {"Exponential": {"base_delay": self.base_delay.to_json(),
                                "max_delay": self.max_delay.to_json()}}


Backoff = FixedBackoff | ExponentialBackoff


def _backoff_from_json(obj: Any) -> Backoff:
    ((tag, body),) = obj.items()
    if tag == "Fixed":
        return FixedBackoff(Duration.from_json(body["delay"]))
    if tag == "Exponential":
        return ExponentialBackoff(Duration.from_json(body["base_delay"]),
                                  Duration.from_json(body["max_delay"]))
    raise ValueError(f"unknown backoff: {tag!r}")


@attrs.frozen
class RetryPolicy:
    """At most ``max_attempts`` attempts per state (counting the first); retryable errors only."""

    max_attempts: int = 3
    backoff: Backoff = FixedBackoff()

    def __attrs_post_init__(self) -> None:
        if not _is_uint(self.max_attempts, 2**32 - 1):
            raise ValueError(f"invalid max_attempts: {self.max_attempts!r}")

    def to_json(self) -> dict[str, Any]:
        return {"max_attempts": self.max_attempts, "backoff": self.backoff.to_json()}

    @classmethod
    def from_json(cls, obj: Any) -> RetryPolicy:
        return cls(obj["max_attempts"], _backoff_from_json(obj["backoff"]))


class IoMode(enum.Enum):
    """``LIVE`` calls transports and records facts; ``REPLAY`` only serves recorded facts."""

    LIVE = "Live"
    REPLAY = "Replay"


@attrs.frozen
class EventProfile:
    """Which domain events a run persists. ``fact_recorded`` is always persisted.

    ``MINIMAL`` drops every other domain event silently; ``NORMAL``, ``VERBOSE`` and
    ``EventProfile.custom(name)`` persist them all.
    """

    name: str
    is_custom: bool = False

    MINIMAL: ClassVar[EventProfile]
    NORMAL: ClassVar[EventProfile]
    VERBOSE: ClassVar[EventProfile]

    @classmethod
    def custom(cls, name: str) -> EventProfile:
        return cls(name, True)

    @property
    def keeps_domain_events(self) -> bool:
        return self.is_custom or self.name != "Minimal"

    def to_json(self) -> str | dict[str, str]:
        return {"Custom": self.name} if self.is_custom else self.name

    @classmethod
    def from_json(cls, obj: Any) -> EventProfile:
        if obj in ("Minimal", "Normal", "Verbose"):
            return cls(obj)
        if isinstance(obj, dict) and len(obj) == 1 and isinstance(obj.get("Custom"), str):
            return cls.custom(obj["Custom"])
        raise ValueError(f"invalid event profile: {obj!r}")


EventProfile.MINIMAL = EventProfile("Minimal")
EventProfile.NORMAL = EventProfile("Normal")
EventProfile.VERBOSE = EventProfile("Verbose")


@attrs.frozen
class ExecutionMode:
    """``SEQUENTIAL`` (the only mode this engine runs) or ``fan_out_join(n)`` (refused)."""

    max_concurrency: int | None = None

    SEQUENTIAL: ClassVar[ExecutionMode]

    @classmethod
    def fan_out_join(cls, max_concurrency: int) -> ExecutionMode:
        if not _is_uint(max_concurrency, 2**32 - 1):
            raise ValueError(f"invalid max_concurrency: {max_concurrency!r}")
        return cls(max_concurrency)

    @property
    def is_sequential(self) -> bool:
        return self.max_concurrency is None

    def check_supported(self) -> None:
        """Raise ``InvalidPlanError`` (``unsupported_execution_mode``) unless sequential."""
        if not self.is_sequential:
            raise InvalidPlanError("execution_mode FanOutJoin is not supported",
                                   code=CODE_UNSUPPORTED_EXECUTION_MODE)

    def to_json(self) -> str | dict[str, Any]:
        if self.max_concurrency is None:
            return "Sequential"
        return {"FanOutJoin": {"max_concurrency": self.max_concurrency}}

    @classmethod
    def from_json(cls, obj: Any) -> ExecutionMode:
        if obj == "Sequential":
            return cls()
        if isinstance(obj, dict) and set(obj) == {"FanOutJoin"}:
            return cls.fan_out_join(obj["FanOutJoin"]["max_concurrency"])
        raise ValueError(f"invalid execution mode: {obj!r}")


ExecutionMode.SEQUENTIAL = ExecutionMode()


@attrs.frozen
class ContextCheckpointing:
    """Recorded for compatibility; this engine always checkpoints after every state."""

    custom: str | None = None

    AFTER_EVERY_STATE: ClassVar[ContextCheckpointing]

    def to_json(self) -> str | dict[str, str]:
        return "AfterEveryState" if self.custom is None else {"Custom": self.custom}

    @classmethod
    def from_json(cls, obj: Any) -> ContextCheckpointing:
        if obj == "AfterEveryState":
            return cls()
        if isinstance(obj, dict) and len(obj) == 1 and isinstance(obj.get("Custom"), str):
            return cls(obj["Custom"])
        raise ValueError(f"invalid context checkpointing: {obj!r}")


ContextCheckpointing.AFTER_EVERY_STATE = ContextCheckpointing()


@attrs.frozen(kw_only=True)
class RunConfig:
    """How a run executes. The defaults are those of mfm-machine's engine tests."""

    io_mode: IoMode = IoMode.LIVE
    retry_policy: RetryPolicy = RetryPolicy()
    event_profile: EventProfile = EventProfile("Minimal")
    execution_mode: ExecutionMode = ExecutionMode()
    context_checkpointing: ContextCheckpointing = ContextCheckpointing()
    replay_missing_fact_retryable: bool = False
    skip_tags: tuple[str, ...] = attrs.field(default=(), converter=tuple_of_str)
    nix_flake_allowlist: tuple[str, ...] = attrs.field(default=DEFAULT_NIX_FLAKE_ALLOWLIST,
                                                       converter=tuple_of_str)

    def to_json(self) -> dict[str, Any]:
        return {
            "io_mode": self.io_mode.value,
            "retry_policy": self.retry_policy.to_json(),
            "event_profile": self.event_profile.to_json(),
            "execution_mode": self.execution_mode.to_json(),
            "context_checkpointing": self.context_checkpointing.to_json(),
            "replay_missing_fact_retryable": self.replay_missing_fact_retryable,
            "skip_tags": list(self.skip_tags),
            "nix_flake_allowlist": list(self.nix_flake_allowlist),
        }

    @classmethod
    def from_json(cls, obj: Any) -> RunConfig:
        retryable = obj["replay_missing_fact_retryable"]
        if not isinstance(retryable, bool):
            raise ValueError(f"invalid replay_missing_fact_retryable: {retryable!r}")
        return cls(
            io_mode=IoMode(obj["io_mode"]),
            retry_policy=RetryPolicy.from_json(obj["retry_policy"]),
            event_profile=EventProfile.from_json(obj["event_profile"]),
            execution_mode=ExecutionMode.from_json(obj["execution_mode"]),
            context_checkpointing=ContextCheckpointing.from_json(obj["context_checkpointing"]),
            replay_missing_fact_retryable=retryable,
            skip_tags=obj["skip_tags"],
            # serde default in mfm-machine: absent means the default allowlist.
            nix_flake_allowlist=obj.get("nix_flake_allowlist", DEFAULT_NIX_FLAKE_ALLOWLIST),
        )


def _opt_str(value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"expected a string or None, got {value!r}")
    return value


@attrs.frozen(kw_only=True)
class BuildProvenance:
    """Where the code that ran came from; every field optional."""

    git_commit: str | None = attrs.field(default=None, converter=_opt_str)
    cargo_lock_hash: str | None = attrs.field(default=None, converter=_opt_str)
    flake_lock_hash: str | None = attrs.field(default=None, converter=_opt_str)
    rustc_version: str | None = attrs.field(default=None, converter=_opt_str)
    target_triple: str | None = attrs.field(default=None, converter=_opt_str)
    env_allowlist: tuple[str, ...] = attrs.field(default=(), converter=tuple_of_str)

    def to_json(self) -> dict[str, Any]:
        return {
            "git_commit": self.git_commit,
            "cargo_lock_hash": self.cargo_lock_hash,
            "flake_lock_hash": self.flake_lock_hash,
            "rustc_version": self.rustc_version,
            "target_triple": self.target_triple,
            "env_allowlist": list(self.env_allowlist),
        }

    @classmethod
    def from_json(cls, obj: Any) -> BuildProvenance:
        return cls(git_commit=obj["git_commit"], cargo_lock_hash=obj["cargo_lock_hash"],
                   flake_lock_hash=obj["flake_lock_hash"], rustc_version=obj["rustc_version"],
                   target_triple=obj["target_triple"], env_allowlist=obj["env_allowlist"])


@attrs.frozen(kw_only=True)
class RunManifest:
    """What a run is: op, version, input parameters, configuration, build provenance.

    ``input_params`` is any JSON value without floats or secrets (the manifest is hashed as
    canonical JSON).
    """

    op_id: OpId = attrs.field(converter=OpId)
    op_version: str = "0"
    input_params: Any = attrs.Factory(dict)
    run_config: RunConfig = RunConfig()
    build: BuildProvenance = BuildProvenance()

    def to_json(self) -> dict[str, Any]:
        return {
            "op_id": self.op_id,
            "op_version": self.op_version,
            "input_params": self.input_params,
            "run_config": self.run_config.to_json(),
            "build": self.build.to_json(),
        }

    @classmethod
    def from_json(cls, obj: Any) -> RunManifest:
        """Decode the serde form; raises ``ValueError`` (or ``TypeError``/``KeyError``)."""
        if not isinstance(obj["op_version"], str):
            raise ValueError(f"invalid op_version: {obj['op_version']!r}")
        return cls(op_id=obj["op_id"], op_version=obj["op_version"],
                   input_params=obj["input_params"],
                   run_config=RunConfig.from_json(obj["run_config"]),
                   build=BuildProvenance.from_json(obj["build"]))


def manifest_bytes(manifest: RunManifest) -> bytes:
    """Canonical JSON bytes of ``manifest``: what is stored, and what its id hashes.

    Raises ``InvalidPlanError`` with code ``secrets_detected`` or ``manifest_not_canonical``.
    """
    try:
        return canonical_json_bytes(manifest.to_json())
    except SecretsNotAllowedError:
        raise InvalidPlanError(
            "run manifest contained secrets (policy forbids persisting secrets)",
            code=CODE_SECRETS_DETECTED) from None
    except FloatNotAllowedError:
        raise InvalidPlanError(
            "run manifest is not canonical-json-hashable (floats are forbidden)",
            code=CODE_MANIFEST_NOT_CANONICAL) from None
    except ValueError as exc:
        raise InvalidPlanError(f"run manifest is not JSON: {exc}",
                               code=CODE_MANIFEST_NOT_CANONICAL) from None


async def load_manifest(artifacts: ArtifactStore, manifest_id: ArtifactId) -> RunManifest:
    """Read a stored manifest and check that its bytes still hash to ``manifest_id``.

    Store errors propagate (``NotFoundError``, ``CorruptionError``). Raises ``ContextError``
    (``manifest_decode_failed``) for bytes that are not JSON, ``InvalidPlanError``
    (``manifest_corrupt``) on a hash mismatch and (``manifest_deserialize_failed``) for JSON
    that is not a manifest, and (``unsupported_execution_mode``) for a fan-out manifest.
    """
    data = await artifacts.get(manifest_id)
    try:
        obj = json.loads(data)
    except ValueError:
        raise ContextError("failed to decode manifest JSON",
                           code=CODE_MANIFEST_DECODE_FAILED) from None
    if artifact_id_for_bytes(data) != manifest_id:
        raise InvalidPlanError("manifest artifact content hash mismatch",
                               code=CODE_MANIFEST_CORRUPT)
    try:
        manifest = RunManifest.from_json(obj)
    except (KeyError, TypeError, ValueError, AttributeError):
        raise InvalidPlanError("failed to deserialize manifest",
                               code=CODE_MANIFEST_DESERIALIZE_FAILED) from None
    manifest.run_config.execution_mode.check_supported()
    return manifest


async def store_manifest(artifacts: ArtifactStore, manifest: RunManifest) -> ArtifactId:
    """Put the manifest's canonical bytes (kind ``Manifest``) and return its id."""
    return await artifacts.put(ArtifactKind.MANIFEST, CheckedBytes(manifest_bytes(manifest)))
