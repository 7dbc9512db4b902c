"""Finding artifacts no run references (``SqliteStore.gc``)."""

from __future__ import annotations

import sqlite3
from typing import Any

import attrs

from .._rules import artifact_refs
from ..errors import CorruptionError
from ..events import decode_event
from ..ids import ArtifactId
from . import _queries as q

__all__ = ["GcReport", "refs_since", "unreferenced"]


@attrs.frozen
class GcReport:
    """Artifacts no run references (deleted if ``applied``)."""

    artifacts: list[ArtifactId]
    bytes: int
    applied: bool


def _refs(conn: sqlite3.Connection | sqlite3.Cursor, events_sql: str, bindings_sql: str,
          params: tuple[Any, ...]) -> set[str]:
    referenced = {row[0] for row in conn.execute(bindings_sql, params).fetchall()}
    for (body,) in conn.execute(events_sql, params):  # nothing else runs on it meanwhile
        try:
            referenced.update(artifact_refs(decode_event(body)))
        except Exception as exc:
            raise CorruptionError(
                f"an event cannot be decoded ({exc}); run verify before gc") from exc
    return referenced


def unreferenced(conn: sqlite3.Connection,
                  cutoff: int) -> tuple[list[tuple[str, int]], dict[int, int]]:
    """One read snapshot: unreferenced artifacts older than ``cutoff``, and each run's head."""
    conn.execute("BEGIN")
    try:
        heads = dict(conn.execute(q.RUN_HEADS).fetchall())
        referenced = _refs(conn, q.EVENT_BODIES, q.BINDING_PAYLOADS, ())
        found = [(aid, size) for aid, _kind, size, created in conn.execute(q.ARTIFACT_META)
                 if aid not in referenced and created <= cutoff]
    finally:
        conn.execute("COMMIT")
    return found, heads


def refs_since(conn: sqlite3.Connection | sqlite3.Cursor, run_pk: int, seq: int) -> set[str]:
    """Artifacts referenced by a run's events and bindings written after ``seq``."""
    return _refs(conn, q.EVENT_BODIES_AFTER, q.BINDING_PAYLOADS_AFTER, (run_pk, seq))
