"""Row checksums of the SQLite file (README, "Schema"): xxh3-64, stored as signed integers.

Version 3 covers every column a read returns or relies on, the run's UUID text included (so a
row moved to another run fails its checksum):

- events: ``xxh3(body, seed = xxh3(run_id NUL seq NUL repr(ts_millis) NUL kind NUL
  repr(name)))``;
- artifacts: ``xxh3(data, seed = xxh3(id NUL kind NUL size))`` (``created_ms``, the time of
  the last put, is not covered: a put of stored bytes refreshes it);
- fact_bindings: ``xxh3(run_id NUL repr(fact_key) NUL payload_id NUL seq)``;
- runs: ``xxh3(run_pk NUL run_id NUL repr(op_id) NUL status NUL head_seq NUL created_ms NUL
  updated_ms)``.

Fields are joined with NUL as UTF-8 text (numbers in decimal); ``repr`` marks the columns
that may be NULL or free text (``None`` against ``'None'``). An f-string costs half of
``repr`` of the tuple, and every event read and write computes one (``cold_load``).

Versions 1 and 2 covered less: events ``xxh3(body, seed = seq)``, artifacts ``xxh3(data)``.
"""

from __future__ import annotations

import sqlite3

import xxhash

_I64 = 1 << 63
_U64 = 1 << 64
_h = xxhash.xxh3_64_intdigest


def _signed(value: int) -> int:
    return value - _U64 if value >= _I64 else value


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def legacy_event_sum(seq: int, body: bytes) -> int:
    """Versions 1-2: the body, seeded with the seq."""
    return _signed(_h(body, seq))


def legacy_artifact_sum(data: bytes) -> int:
    return _signed(_h(data))


def event_sum(run_id: str, seq: int, ts: int | None, kind: str, name: str | None,
              body: bytes) -> int:
    return _signed(_h(body, _h(_utf8(f"{run_id}\0{seq}\0{ts!r}\0{kind}\0{name!r}"))))


def artifact_sum(artifact_id: str, kind: str, size: int, data: bytes) -> int:
    return _signed(_h(data, _h(_utf8(f"{artifact_id}\0{kind}\0{size}"))))


def binding_sum(run_id: str, key: str, payload_id: str, seq: int) -> int:
    return _signed(_h(_utf8(f"{run_id}\0{key!r}\0{payload_id}\0{seq}")))


def run_sum(run_pk: int, run_id: str, op_id: str | None, status: str, head: int,
            created: int, updated: int) -> int:
    return _signed(_h(_utf8(
        f"{run_pk}\0{run_id}\0{op_id!r}\0{status}\0{head}\0{created}\0{updated}")))


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
