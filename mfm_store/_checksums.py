"""Row checksums shared by every backend (README, "Schema"): xxh3-64, stored as signed
integers. PostgreSQL stores the same checksums as SQLite, so a row copied between them keeps
its sum.

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

import xxhash

__all__ = [
    "artifact_sum",
    "binding_sum",
    "event_sum",
    "event_sum_at",
    "event_tail",
    "legacy_artifact_sum",
    "legacy_event_sum",
    "run_prefix",
    "run_sum",
    "run_sum_at",
]

_I64 = 1 << 63
_U64 = 1 << 64
_h = xxhash.xxh3_64_intdigest


def legacy_event_sum(seq: int, body: bytes) -> int:
    """Versions 1-2: the body, seeded with the seq."""
    value = _h(body, seq)
    return value - _U64 if value >= _I64 else value


def legacy_artifact_sum(data: bytes) -> int:
    value = _h(data)
    return value - _U64 if value >= _I64 else value


def event_sum(run_id: str, seq: int, ts: int | None, kind: str, name: str | None,
              body: bytes) -> int:
    tail = None
    if ts is None and type(name) is str and kind == "Domain":
        tail = _DOMAIN_TAILS.get(name)
    if tail is None:
        tail = event_tail(ts, kind, name)
    value = _h(body, _h(f"{run_id}\0{seq}{tail}".encode("utf-8", "surrogatepass")))
    return value - _U64 if value >= _I64 else value


# Seed tails of events without ts_millis: of domain events by name, of kernel events by kind.
# The repr calls cost a third of a checksum, which every event write and read computes
# (append_bulk, cold_load). Bounded: applications use a handful of names.
_DOMAIN_TAILS: dict[str, str] = {}
_KERNEL_TAILS: dict[str, str] = {}


def event_tail(ts: int | None, kind: str, name: str | None) -> str:
    """The part of an event's seed text after its seq: ``NUL repr(ts) NUL kind NUL
    repr(name)`` (see :func:`event_sum_at`)."""
    if ts is None and type(kind) is str:
        if kind == "Domain" and type(name) is str:
            tail = _DOMAIN_TAILS.get(name)
            if tail is None:
                tail = f"\0None\0Domain\0{name!r}"
                if len(name) <= 64 and len(_DOMAIN_TAILS) < 1024:
                    _DOMAIN_TAILS[name] = tail
            return tail
        if name is None:
            tail = _KERNEL_TAILS.get(kind)
            if tail is None:
                tail = f"\0None\0{kind}\0None"
                if len(kind) <= 64 and len(_KERNEL_TAILS) < 64:
                    _KERNEL_TAILS[kind] = tail
            return tail
    return f"\0{ts!r}\0{kind}\0{name!r}"


def event_sum_at(head: str, seq: int, tail: str, body: bytes) -> int:
    """:func:`event_sum` from its seed text's parts: ``head`` = ``run_id + "\\0"``, ``tail`` =
    :func:`event_tail`."""
    value = _h(body, _h(f"{head}{seq}{tail}".encode("utf-8", "surrogatepass")))
    return value - _U64 if value >= _I64 else value


def artifact_sum(artifact_id: str, kind: str, size: int, data: bytes) -> int:
    value = _h(data, _h(f"{artifact_id}\0{kind}\0{size}".encode("utf-8", "surrogatepass")))
    return value - _U64 if value >= _I64 else value


def binding_sum(run_id: str, key: str, payload_id: str, seq: int) -> int:
    value = _h(f"{run_id}\0{key!r}\0{payload_id}\0{seq}".encode("utf-8", "surrogatepass"))
    return value - _U64 if value >= _I64 else value


def run_sum(run_pk: int, run_id: str, op_id: str | None, status: str, head: int,
            created: int, updated: int) -> int:
    return run_sum_at(run_prefix(run_pk, run_id, op_id, status), head, created, updated)


def run_prefix(run_pk: int, run_id: str, op_id: str | None, status: str) -> str:
    """The part of a run row's checksum text that changes only with its op id or status."""
    return f"{run_pk}\0{run_id}\0{op_id!r}\0{status}\0"


def run_sum_at(prefix: str, head: int, created: int, updated: int) -> int:
    """:func:`run_sum` from :func:`run_prefix`, which a writer keeps for its run (every commit
    of an append computes one: ``append_seq``)."""
    value = _h(f"{prefix}{head}\0{created}\0{updated}".encode("utf-8", "surrogatepass"))
    return value - _U64 if value >= _I64 else value
