"""The row checksums (:mod:`mfm_store._checksums`) as the SQLite store uses them: the same
functions, and their registration as SQL functions on a connection (the writer's statements and
the migration to version 3 call them)."""

from __future__ import annotations

import sqlite3

from .._checksums import (
    artifact_sum,
    binding_sum,
    event_sum,
    event_sum_at,
    event_tail,
    legacy_artifact_sum,
    legacy_event_sum,
    run_prefix,
    run_sum,
    run_sum_at,
)

__all__ = [
    "artifact_sum",
    "binding_sum",
    "event_sum",
    "event_sum_at",
    "event_tail",
    "legacy_artifact_sum",
    "legacy_event_sum",
    "register",
    "run_prefix",
    "run_sum",
    "run_sum_at",
]


def _migrated_event(run_id: str, seq: int, ts: int | None, kind: str, name: str | None,
                    old: int, body: bytes) -> int:
    new = event_sum(run_id, seq, ts, kind, name, body)
    # A row that failed its old checksum keeps failing: migration must not bless corruption.
    return new if legacy_event_sum(seq, body) == old else new ^ 1


def _migrated_artifact(artifact_id: str, kind: str, size: int, old: int, data: bytes) -> int:
    new = artifact_sum(artifact_id, kind, size, data)
    return new if legacy_artifact_sum(data) == old else new ^ 1


def register(conn: sqlite3.Connection) -> None:
    """Make the checksum functions callable from SQL on ``conn`` (the writer's statements and
    the migration to version 3 use them)."""
    conn.create_function("mfm_run_sum", 7, run_sum, deterministic=True)
    conn.create_function("mfm_binding_sum", 4, binding_sum, deterministic=True)
    conn.create_function("mfm_migrated_event_sum", 7, _migrated_event, deterministic=True)
    conn.create_function("mfm_migrated_artifact_sum", 5, _migrated_artifact, deterministic=True)
