"""Write and read rules every backend applies before touching its storage (SPEC §5.1).

Pure functions: each store calls the same ones in the same order, so ``MemoryStore``,
``SqliteStore`` and any later backend accept and refuse exactly the same inputs, with the same
codes, and write nothing when they refuse.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from typing import Any

from . import _checksums as cs

# The policy's own pieces: the secret policy has one definition, in ``canonical``.
from .canonical import (
    ASCII_LOWER,
    CLEAN_STRINGS,
    MNEMONIC_MIN_LEN,
    SECRET_RE,
    looks_like_mnemonic,
    remember_clean,
    string_contains_secrets,
)
from .errors import (
    CODE_CONCURRENCY,
    CODE_FACT_BINDING_CONFLICT,
    CODE_INVALID_ARGUMENT,
    CODE_INVALID_ENVELOPES,
    CODE_INVALID_FACT_KEY,
    CODE_INVALID_ID,
    CODE_SECRETS_DETECTED,
    ConcurrencyError,
    NotFoundError,
    StorageError,
)
from .events import (
    DOMAIN_FACT_RECORDED,
    DomainEvent,
    Event,
    EventEnvelope,
    RunCompleted,
    RunStarted,
    StateCompleted,
    StateEntered,
    StateFailed,
    encode_event,
)
from .ids import ArtifactId, RunId
from .stores import ArtifactKind

STATUS_RUNNING = "running"
I64_MAX = 2**63 - 1
I64_MIN = -(2**63)
# Artifacts of these kinds hold JSON: the secret policy applies to them when they parse.
JSON_KINDS = frozenset({"Manifest", "ContextSnapshot", "FactPayload", "Output"})
SECRETS_MESSAGE = "(policy forbids persisting secrets)"
# The kind a copy gives a declared reference (``meta.refs``) when the source cannot say the
# stored one: an ``Other`` kind, stored as is (the bytes were checked where they came from).
DECLARED_REF_KIND = ArtifactKind.other("Ref")


class CheckedBytes(bytes):
    """Package-internal marker: bytes the caller already made canonical and secret-scanned
    (``LiveIo``'s fact payloads, the engine's snapshots and manifests) or knows to be raw
    (random-bytes facts). Stores skip the secret scan for them, so no byte is scanned twice."""

    __slots__ = ()


def now_millis() -> int:
    return time.time_ns() // 1_000_000


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def invalid(message: str) -> StorageError:
    return StorageError(message, code=CODE_INVALID_ARGUMENT)


def run_id_of(run_id: object) -> RunId:
    """A ``RunId`` (or its text form, parsed); anything else is ``StorageError`` ``invalid_id``."""
    if isinstance(run_id, RunId):
        return run_id
    if isinstance(run_id, str):
        try:
            return RunId.parse(run_id)
        except ValueError:
            pass
    raise StorageError(f"invalid run_id: {_show(run_id)}", code=CODE_INVALID_ID)


def seq_of(value: object, name: str = "seq") -> int:
    """A seq or head: an ``int`` (not ``bool``) in ``0..2**63-1``, else ``invalid_argument``."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= I64_MAX:
        raise invalid(f"{name} must be an integer in 0..2**63-1, got {_show(value)}")
    return int(value)


def range_of(from_seq: object, to_seq: object) -> tuple[int, int]:
    """``(start, stop)`` of a read: ints (not bool) in the i64 range; ``from_seq`` below 1
    reads from 1, ``to_seq`` None reads to the end."""
    for name, value in (("from_seq", from_seq), ("to_seq", to_seq)):
        if name == "to_seq" and value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not (
                I64_MIN <= value <= I64_MAX):
            raise invalid(f"{name} must be an integer in the i64 range, got {_show(value)}")
    assert isinstance(from_seq, int)
    stop = I64_MAX if to_seq is None else int(to_seq)  # type: ignore[call-overload]
    return max(int(from_seq), 1), stop


def page_size_of(page_size: object) -> int:
    if isinstance(page_size, bool) or not isinstance(page_size, int) or not (
            1 <= page_size <= I64_MAX):
        raise invalid(f"page_size must be a positive integer, got {_show(page_size)}")
    return int(page_size)


def data_of(data: object) -> bytes:
    """The bytes of a bytes-like value (``bytes``, ``bytearray``, ``memoryview``); anything
    else (an ``int`` would make zero bytes) is ``invalid_argument``."""
    if type(data) is bytes:
        return data
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data)
    raise invalid(f"artifact data must be bytes-like, got {type(data).__name__}")


def kind_of(kind: object) -> ArtifactKind:
    if not isinstance(kind, ArtifactKind):
        raise invalid(f"kind must be an ArtifactKind, got {_show(kind)}")
    return kind


def fact_key_of(key: object) -> str:
    """A fact key: a non-empty ``str`` of valid Unicode (``invalid_fact_key``) naming no
    secret (``secrets_detected``)."""
    if not isinstance(key, str):
        raise StorageError(f"fact key must be a string, got {type(key).__name__}",
                           code=CODE_INVALID_FACT_KEY)
    if not key:
        raise StorageError("fact key must not be empty", code=CODE_INVALID_FACT_KEY)
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        raise StorageError("fact key is not valid Unicode (lone surrogate)",
                           code=CODE_INVALID_FACT_KEY) from None
    if string_contains_secrets(key):
        raise StorageError(f"fact key contained secrets {SECRETS_MESSAGE}",
                           code=CODE_SECRETS_DETECTED)
    return key


def check_bind(run_id: object, key: object, expected_seq: object) -> tuple[RunId, str]:
    """The checks of ``bind_fact`` / ``record_fact`` before their payload's, in this order."""
    rid = run_id_of(run_id)
    checked = fact_key_of(key)
    if expected_seq is not None:
        seq_of(expected_seq, "expected_seq")
    return rid, checked


def lookup_key(key: object) -> str | None:
    """A fact key to look up: ``None`` for a string no binding can have (lone surrogates);
    a non-string is ``invalid_fact_key``."""
    if not isinstance(key, str):
        raise StorageError(f"fact key must be a string, got {type(key).__name__}",
                           code=CODE_INVALID_FACT_KEY)
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return key


def artifact_id_of(value: object) -> ArtifactId:
    try:
        return ArtifactId(value)
    except (ValueError, TypeError):
        raise StorageError(f"invalid artifact id: {_show(value)}", code=CODE_INVALID_ID) from None


def _strings(value: Any, out: list[str]) -> None:
    """Append the strings of ``value`` (object keys included) not already known clean."""
    t = type(value)
    if t is dict:
        for k, v in value.items():
            if k not in CLEAN_STRINGS and isinstance(k, str):
                out.append(k)
            tv = type(v)
            if tv is str:
                if v not in CLEAN_STRINGS:
                    out.append(v)
            elif tv is dict or tv is list or tv is tuple or not (
                    tv is int or tv is bool or v is None or tv is float):
                _strings(v, out)
    elif t is list or t is tuple:
        for v in value:
            tv = type(v)
            if tv is str:
                if v not in CLEAN_STRINGS:
                    out.append(v)
            elif not (tv is int or tv is bool or v is None or tv is float):
                _strings(v, out)
    elif isinstance(value, str):
        if value not in CLEAN_STRINGS:
            out.append(value)
    elif isinstance(value, dict):
        _strings(dict(value), out)
    elif isinstance(value, list | tuple):
        _strings(list(value), out)


def has_secrets(value: Any) -> bool:
    """The canonical secret policy (``mfm_store.canonical``) over a JSON value, object keys
    included. Strings already found clean (``canonical.CLEAN_STRINGS``: keys, names, recurring
    values) are skipped; the others are searched in one pass, joined: no needle contains the
    NUL separator, so none can match across two strings. Only strings long enough to be a
    mnemonic are also checked one by one."""
    if type(value) is dict:
        # A flat object of known keys and known or non-text values, the common event payload,
        # is decided in one loop (scan_events: a quarter of its cost, append_seq).
        for k, v in value.items():
            if k not in CLEAN_STRINGS:
                break
            tv = type(v)
            if tv is str:
                if v not in CLEAN_STRINGS:
                    break
            elif not (tv is int or tv is bool or v is None or tv is float):
                break
        else:
            return False
    strings: list[str] = []
    _strings(value, strings)
    if not strings:
        return False
    joined = strings[0] if len(strings) == 1 else "\x00".join(strings)
    # str.lower() equals the policy's A-Z-only folding on ASCII text, and is much faster.
    folded = joined.lower() if joined.isascii() else joined.translate(ASCII_LOWER)
    if SECRET_RE.search(folded) is not None:
        return True
    if any(len(s) >= MNEMONIC_MIN_LEN and looks_like_mnemonic(s) for s in strings):
        return True
    for s in strings:
        remember_clean(s)
    return False


def _pairs(pairs: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    # Keep every member, duplicates too: a later duplicate must not hide an earlier secret.
    return pairs


def check_artifact(kind: object, data: object) -> bytes:
    """The bytes to store for ``put(kind, data)``, after the checks every store applies.

    JSON kinds (manifest, context snapshot, fact payload, output) that parse as JSON are
    scanned with the canonical secret policy, object keys and duplicate members included
    (``secrets_detected``); ``SecretPayload``, ``Other`` kinds and bytes that are not JSON
    (random-bytes facts) are stored as they are. :class:`CheckedBytes` skip the scan.
    """
    kind = kind_of(kind)
    checked = isinstance(data, CheckedBytes)  # subclasses carry more (CheckedPayload)
    raw = data_of(data)
    if checked or kind.is_other or kind.name not in JSON_KINDS:
        return raw
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw
    try:
        value = json.loads(text, object_pairs_hook=_pairs)
    except ValueError:
        return raw  # not JSON: stored as it is
    except RecursionError:
        raise invalid(f"{kind} artifact is nested too deeply to be checked for secrets"
                      ) from None
    try:
        found = has_secrets(value)
    except RecursionError:
        raise invalid(f"{kind} artifact is nested too deeply to be checked for secrets"
                      ) from None
    if found:
        raise StorageError(f"{kind} artifact contained secrets {SECRETS_MESSAGE}",
                           code=CODE_SECRETS_DETECTED)
    return raw


def check_envelopes(run_id: object, expected_seq: object,
                    envelopes: Sequence[EventEnvelope]) -> RunId:
    """Raise ``StorageError`` unless envelopes belong to ``run_id`` with seqs expected+1....

    Returns the run id. Checks the structure only; :func:`scan_events` checks the content.
    """
    if not isinstance(run_id, RunId):
        raise StorageError(f"run_id must be a RunId, got {type(run_id).__name__}",
                           code=CODE_INVALID_ENVELOPES)
    if isinstance(expected_seq, bool) or not isinstance(expected_seq, int) or not (
            0 <= expected_seq <= I64_MAX):
        raise StorageError(f"invalid expected_seq: {_show(expected_seq)}",
                           code=CODE_INVALID_ENVELOPES)
    if expected_seq + len(envelopes) > I64_MAX:
        raise StorageError("seqs would leave the i64 range", code=CODE_INVALID_ENVELOPES)
    for offset, env in enumerate(envelopes, start=1):
        if not isinstance(env, EventEnvelope):
            raise StorageError(f"not an EventEnvelope: {_show(env)}",
                               code=CODE_INVALID_ENVELOPES)
        if env.run_id is not run_id and env.run_id != run_id:
            raise StorageError(f"envelope run_id {env.run_id} is not {run_id}",
                               code=CODE_INVALID_ENVELOPES)
        if isinstance(env.seq, bool) or env.seq != expected_seq + offset:
            raise StorageError(
                f"envelope seq {_show(env.seq)} is not {expected_seq + offset} (run {run_id}); "
                "seqs must continue the head contiguously", code=CODE_INVALID_ENVELOPES)
    return run_id


class EventScan:
    """What a batch of events does to its run, found by :func:`scan_events`.

    ``bindings``: key -> (payload id, seq) of the first ``fact_recorded`` event per key;
    ``refs``: artifact id -> seq of the first event naming it (they must be in the store);
    ``op_id`` / ``status``: what the run takes (``None``: unchanged).
    """

    __slots__ = ("bindings", "op_id", "refs", "status")

    def __init__(self) -> None:
        self.bindings: dict[str, tuple[ArtifactId, int]] = {}
        self.refs: dict[str, int] = {}
        self.op_id: str | None = None
        self.status: str | None = None


def scan_events(run_id: RunId, envelopes: Sequence[EventEnvelope]) -> EventScan:
    """Check the content of encodable events, in order, before anything is written.

    Refuses (nothing written): secrets in a domain event's name or payload or in a failure's
    message or details (``secrets_detected``); a ``fact_recorded`` event whose payload is not
    exactly ``{"key": fact key, "payload_id": artifact id, "meta": JSON}`` (``meta`` may be
    absent, as in streams imported from elsewhere), or whose ``meta`` has a ``"refs"`` member
    that is not a list of artifact ids (``invalid_envelopes``); two bindings of one key to
    different payloads (``fact_binding_conflict``). ``refs`` includes the payload and every
    declared reference (``meta.refs``) of a ``fact_recorded`` event.
    """
    scan = EventScan()
    for env in envelopes:
        event, seq = env.event, env.seq
        if type(event) is DomainEvent:
            name = event.name
            if has_secrets(event.payload) or (
                    name not in CLEAN_STRINGS and string_contains_secrets(name)):
                raise StorageError(f"event {seq} of run {run_id} contained secrets "
                                   f"{SECRETS_MESSAGE}", code=CODE_SECRETS_DETECTED)
            if event.name == DOMAIN_FACT_RECORDED:
                key, pid = _fact_payload(run_id, seq, event.payload)
                if key not in scan.bindings:
                    scan.bindings[key] = (pid, seq)
                elif scan.bindings[key][0] != pid:
                    raise binding_conflict(run_id, key, scan.bindings[key][0], pid)
                scan.refs.setdefault(pid, seq)
                for declared in _declared_refs(run_id, seq, event.payload):
                    scan.refs.setdefault(declared, seq)
            if event.payload_ref is not None:
                scan.refs.setdefault(event.payload_ref, seq)
            continue
        if type(event) is StateFailed:
            info = event.error.info
            if has_secrets([info.message, info.details]):
                raise StorageError(f"event {seq} of run {run_id}: failure message or details "
                                   f"contained secrets {SECRETS_MESSAGE}",
                                   code=CODE_SECRETS_DETECTED)
        for ref in artifact_refs(event):
            scan.refs.setdefault(ref, seq)
        scan.op_id = op_id_of(event) or scan.op_id
        scan.status = status_after(event) or scan.status
    return scan


def _fact_payload(run_id: RunId, seq: int, payload: object) -> tuple[str, ArtifactId]:
    if not isinstance(payload, dict) or not {"key", "payload_id"} <= set(payload) <= {
            "key", "payload_id", "meta"}:
        raise StorageError(
            f"event {seq} of run {run_id}: a fact_recorded payload must be "
            '{"key", "payload_id", "meta"} ("meta" may be absent)', code=CODE_INVALID_ENVELOPES)
    try:
        key = fact_key_of(payload["key"])
    except StorageError as exc:
        if exc.code == CODE_SECRETS_DETECTED:
            raise
        raise StorageError(f"event {seq} of run {run_id}: {exc}",
                           code=CODE_INVALID_ENVELOPES) from None
    try:
        return key, ArtifactId(payload["payload_id"])
    except (ValueError, TypeError):
        raise StorageError(f"event {seq} of run {run_id}: fact_recorded payload_id is not an "
                           "artifact id", code=CODE_INVALID_ENVELOPES) from None


def _declared_refs(run_id: RunId, seq: int, payload: dict[str, Any]) -> list[ArtifactId]:
    """A written ``fact_recorded`` event's ``meta.refs``, checked (``invalid_envelopes``)."""
    meta = payload.get("meta")
    if not isinstance(meta, dict) or "refs" not in meta:
        return []
    try:
        return list(check_refs(meta["refs"]))
    except StorageError:
        raise StorageError(f"event {seq} of run {run_id}: fact_recorded meta.refs must be a "
                           "list of artifact ids", code=CODE_INVALID_ENVELOPES) from None


def check_refs(refs: object) -> tuple[ArtifactId, ...]:
    """The declared references of a fact (``refs=`` of ``bind_fact`` / ``record_fact``):
    artifact ids, deduplicated, sorted. Not a list/tuple/set of ids: ``invalid_argument`` /
    ``invalid_id``."""
    if not isinstance(refs, list | tuple | set | frozenset):
        raise invalid(f"refs must be a list of artifact ids, got {_show(refs)}")
    return tuple(sorted({artifact_id_of(ref) for ref in refs}))


def meta_refs(payload: object) -> list[ArtifactId]:
    """The artifacts a ``fact_recorded`` payload declares it depends on:
    ``payload["meta"]["refs"]`` (lenient: members that are not artifact ids are skipped; the
    write path refuses them)."""
    meta = payload.get("meta") if isinstance(payload, dict) else None
    refs = meta.get("refs") if isinstance(meta, dict) else None
    if not isinstance(refs, list):
        return []
    out = []
    for ref in refs:
        try:
            out.append(ArtifactId(ref))
        except (ValueError, TypeError):
            continue
    return out


def missing_artifact(run_id: RunId | str, seq: int, artifact_id: str) -> NotFoundError:
    return NotFoundError(f"event {seq} of run {run_id} names artifact {artifact_id}, which is "
                         "not in the store")


def artifact_refs(event: Event) -> Iterator[str]:
    """Artifact ids a kernel event names, or a domain event's ``payload_ref`` and, for a
    ``fact_recorded`` event, its declared references (``meta.refs``; not its payload, see
    :func:`fact_binding_of`). Every reference walk (gc, verify, export, push, fork) uses it."""
    if isinstance(event, RunStarted):
        yield event.manifest_id
        yield event.initial_snapshot_id
    elif isinstance(event, StateEntered):
        yield event.base_snapshot_id
    elif isinstance(event, StateCompleted):
        yield event.context_snapshot_id
    elif isinstance(event, StateFailed):
        if event.failure_snapshot_id is not None:
            yield event.failure_snapshot_id
    elif isinstance(event, RunCompleted):
        if event.final_snapshot_id is not None:
            yield event.final_snapshot_id
    elif isinstance(event, DomainEvent):
        if event.payload_ref is not None:
            yield event.payload_ref
        if event.name == DOMAIN_FACT_RECORDED:
            yield from meta_refs(event.payload)


def fact_binding_of(event: object) -> tuple[str, ArtifactId] | None:
    """``(key, payload_id)`` if ``event`` is a well-formed ``fact_recorded`` event, else None.

    Lenient (for reading streams written before the exact shape was enforced)."""
    if not isinstance(event, DomainEvent) or event.name != DOMAIN_FACT_RECORDED:
        return None
    payload = event.payload
    if not isinstance(payload, dict):
        return None
    key, pid = payload.get("key"), payload.get("payload_id")
    if not isinstance(key, str) or not isinstance(pid, str):
        return None
    try:
        return key, ArtifactId(pid)
    except ValueError:
        return None


def fact_recorded_event(key: str, payload_id: ArtifactId,
                        refs: Sequence[str] = ()) -> DomainEvent:
    """The event of a new binding; ``refs`` (checked by :func:`check_refs`) become
    ``meta.refs``, and ``meta`` is ``{}`` without them."""
    meta: dict[str, Any] = {"refs": list(refs)} if refs else {}
    return DomainEvent(DOMAIN_FACT_RECORDED, {"key": key, "payload_id": payload_id, "meta": meta})


def head_moved(run_id: RunId | str, expected: int, head: int) -> ConcurrencyError:
    return ConcurrencyError(f"run {run_id}: expected head {expected}, found {head}",
                            code=CODE_CONCURRENCY)


def binding_conflict(run_id: RunId | str, key: str, bound: str, new: str) -> ConcurrencyError:
    return ConcurrencyError(
        f"fact {key!r} of run {run_id} is bound to {bound}; refusing {new}",
        code=CODE_FACT_BINDING_CONFLICT)


def status_after(event: object) -> str | None:
    """The run status an event sets, if any."""
    if isinstance(event, RunCompleted):
        return event.status.value.lower()
    return None


def op_id_of(event: object) -> str | None:
    return event.op_id if isinstance(event, RunStarted) else None


def event_rows(rid: str, envelopes: Sequence[EventEnvelope]) -> list[tuple[Any, ...]]:
    """The rows ``(seq, ts, kind, name, checksum, body)`` every backend stores for checked
    envelopes of run ``rid`` (CBOR body, whole-row checksum). An event that cannot be encoded
    is ``StorageError`` (``invalid_envelopes``)."""
    rows: list[tuple[Any, ...]] = []
    head = rid + "\0"
    sum_at, tail_of = cs.event_sum_at, cs.event_tail
    for env in envelopes:
        event, seq, ts = env.event, env.seq, env.ts_millis
        try:
            body = encode_event(event)
        except Exception as exc:
            raise StorageError(f"event {seq} of run {rid} cannot be encoded: {exc}",
                               code=CODE_INVALID_ENVELOPES) from exc
        if type(event) is DomainEvent:
            kind, name = "Domain", event.name
        else:
            kind, name = type(event).__name__, None
        rows.append((seq, ts, kind, name, sum_at(head, seq, tail_of(ts, kind, name), body),
                     body))
    return rows
