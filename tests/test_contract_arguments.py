"""Every public store method checks its arguments the same way on every backend (issue 13).

Each case calls one method with one bad argument (wrong type, a bool where an int is wanted,
out of range, ``page_size=0``, a bad run or artifact id, a secret-bearing key) and pins the
error class and code; the table is the same for every backend in ``BACKENDS`` (PostgreSQL
included: it starts its own server), so the backends agree with each other by construction.
A closed store answers ``store_closed`` to every method, after the arguments are checked (a
bad argument is reported as such, closed or not; memory and PostgreSQL were changed to this
order, SQLite already had it).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import BACKENDS
from mfm_store import ArtifactKind, DomainEvent, EventEnvelope, MfmError, RunId, Store

RUN = RunId.parse("3f2b8c1e-6a4d-4f7e-9b1a-2c5d8e7f9a01")
OTHER = RunId.parse("9a1b2c3d-4e5f-4a6b-8c7d-0e1f2a3b4c5d")
ABSENT = "0" * 64
Call = Callable[[Any], Awaitable[object]]


def _env(seq: int, run: RunId = RUN) -> EventEnvelope:
    return EventEnvelope(run, seq, None, DomainEvent("x", {}))


async def _drain(store: Any, **kwargs: Any) -> list[EventEnvelope]:
    return [env async for env in store.iter_events(RUN, **kwargs)]


INVALID_ID = "StorageError:invalid_id"
INVALID_ARGUMENT = "StorageError:invalid_argument"
INVALID_ENVELOPES = "StorageError:invalid_envelopes"
INVALID_FACT_KEY = "StorageError:invalid_fact_key"
NOT_FOUND = "NotFoundError:artifact_not_found"

# name: (call, expected "Class:code")
CASES: dict[str, tuple[Call, str]] = {
    "head_seq run id not a uuid": (lambda s: s.head_seq("nope"), INVALID_ID),
    "head_seq run id an int": (lambda s: s.head_seq(123), INVALID_ID),
    "append expected_seq negative": (lambda s: s.append(RUN, -1, []), INVALID_ENVELOPES),
    "append expected_seq a bool": (lambda s: s.append(RUN, True, []), INVALID_ENVELOPES),
    "append expected_seq a str": (lambda s: s.append(RUN, "0", []), INVALID_ENVELOPES),
    "append expected_seq past i64": (lambda s: s.append(RUN, 2**63, []), INVALID_ENVELOPES),
    "append run id not a uuid": (lambda s: s.append("bad", 0, []), INVALID_ENVELOPES),
    "append not an envelope": (lambda s: s.append(RUN, 0, [1]), INVALID_ENVELOPES),
    "append seq gap": (lambda s: s.append(RUN, 0, [_env(2)]), INVALID_ENVELOPES),
    "append another run's envelope": (lambda s: s.append(RUN, 0, [_env(1, OTHER)]),
                                      INVALID_ENVELOPES),
    "read_range from_seq a bool": (lambda s: s.read_range(RUN, True), INVALID_ARGUMENT),
    "read_range from_seq a float": (lambda s: s.read_range(RUN, 1.5), INVALID_ARGUMENT),
    "read_range to_seq a str": (lambda s: s.read_range(RUN, 1, "x"), INVALID_ARGUMENT),
    "read_range run id not a uuid": (lambda s: s.read_range("bad"), INVALID_ID),
    "read_range from_seq negative reads from 1": (lambda s: s.read_range(RUN, -1), "ok"),
    "iter_events page_size 0": (lambda s: _drain(s, page_size=0), INVALID_ARGUMENT),
    "iter_events page_size a bool": (lambda s: _drain(s, page_size=True), INVALID_ARGUMENT),
    "iter_events page_size a str": (lambda s: _drain(s, page_size="10"), INVALID_ARGUMENT),
    "put kind a str": (lambda s: s.put("FactPayload", b"x"), INVALID_ARGUMENT),
    "put data a str": (lambda s: s.put(ArtifactKind.OUTPUT, "x"), INVALID_ARGUMENT),
    "put data None": (lambda s: s.put(ArtifactKind.OUTPUT, None), INVALID_ARGUMENT),
    "get id not hex": (lambda s: s.get("nothex"), INVALID_ID),
    "get id an int": (lambda s: s.get(123), INVALID_ID),
    "get id upper case": (lambda s: s.get("A" * 64), INVALID_ID),
    "get absent": (lambda s: s.get(ABSENT), NOT_FOUND),
    "exists id not hex": (lambda s: s.exists("nothex"), INVALID_ID),
    "missing id not hex": (lambda s: s.missing(["nothex"]), INVALID_ID),
    "bind_fact empty key": (lambda s: s.bind_fact(RUN, "", ABSENT), INVALID_FACT_KEY),
    "bind_fact key an int": (lambda s: s.bind_fact(RUN, 123, ABSENT), INVALID_FACT_KEY),
    "bind_fact payload id not hex": (lambda s: s.bind_fact(RUN, "k", "bad"), INVALID_ID),
    "bind_fact payload absent": (lambda s: s.bind_fact(RUN, "k", ABSENT), NOT_FOUND),
    "bind_fact expected_seq negative": (
        lambda s: s.bind_fact(RUN, "k", ABSENT, expected_seq=-1), INVALID_ARGUMENT),
    "bind_fact expected_seq a bool": (
        lambda s: s.bind_fact(RUN, "k", ABSENT, expected_seq=True), INVALID_ARGUMENT),
    "bind_fact ref not hex": (lambda s: s.bind_fact(RUN, "k", ABSENT, refs=["bad"]),
                              INVALID_ID),
    "bind_fact secret in key": (lambda s: s.bind_fact(RUN, "my password", ABSENT),
                                "StorageError:secrets_detected"),
    "record_fact data a str": (lambda s: s.record_fact(RUN, "k", "x"), INVALID_ARGUMENT),
    "get_fact key an int": (lambda s: s.get_fact(RUN, 123), INVALID_FACT_KEY),
    "get_fact run id not a uuid": (lambda s: s.get_fact("bad", "k"), INVALID_ID),
    "facts run id not a uuid": (lambda s: s.facts("bad"), INVALID_ID),
    "list_runs limit negative": (lambda s: s.list_runs(limit=-1), INVALID_ARGUMENT),
    "list_runs limit 0": (lambda s: s.list_runs(limit=0), INVALID_ARGUMENT),
    "list_runs limit a bool": (lambda s: s.list_runs(limit=True), INVALID_ARGUMENT),
    "list_runs after not a uuid": (lambda s: s.list_runs(after="bad"), INVALID_ID),
}

# Valid calls: a closed store refuses each with store_closed.
VALID: dict[str, Call] = {
    "head_seq": lambda s: s.head_seq(RUN),
    "append": lambda s: s.append(RUN, 0, [_env(1)]),
    "read_range": lambda s: s.read_range(RUN),
    "put": lambda s: s.put(ArtifactKind.OUTPUT, b"x"),
    "get": lambda s: s.get(ABSENT),
    "exists": lambda s: s.exists(ABSENT),
    "missing": lambda s: s.missing([ABSENT]),
    "bind_fact": lambda s: s.bind_fact(RUN, "k", ABSENT),
    "record_fact": lambda s: s.record_fact(RUN, "k", b"{}"),
    "get_fact": lambda s: s.get_fact(RUN, "k"),
    "facts": lambda s: s.facts(RUN),
    "list_runs": lambda s: s.list_runs(),
}
CLOSED = "StorageError:store_closed"
# A bad argument is reported before the closed store (the arguments are checked first, as a
# pure function of them; then the store is asked). Exceptions, to be aligned by their owner:
CLOSED_FIRST = {("memory", "list_runs"): "STREAM (list_runs checks closed first in memory)"}


async def _outcome(call: Call, store: Store) -> str:
    try:
        await call(store)
    except MfmError as exc:
        return f"{type(exc).__name__}:{exc.info.code}"
    return "ok"


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def test_every_argument_check_gives_the_same_coded_error(backend: str,
                                                              tmp_path: Path) -> None:
    store = await BACKENDS[backend](tmp_path)
    try:
        got = {name: await _outcome(call, store) for name, (call, _) in CASES.items()}
        assert await store.head_seq(RUN) == 0  # nothing was written by any of them
        assert await store.list_runs() == []
    finally:
        await store.close()
    assert got == {name: expected for name, (_, expected) in CASES.items()}


async def test_a_closed_store_refuses_every_method(backend: str, tmp_path: Path) -> None:
    store = await BACKENDS[backend](tmp_path)
    await store.close()
    got = {name: await _outcome(call, store) for name, call in VALID.items()}
    assert got == dict.fromkeys(VALID, CLOSED)
    # A missing artifact is found by asking the store, so a closed store answers first.
    bad = {name: await _outcome(call, store) for name, (call, expected) in CASES.items()
           if expected not in ("ok", NOT_FOUND)}
    want = {name: CLOSED if (backend, name.split()[0]) in CLOSED_FIRST else CASES[name][1]
            for name in bad}
    assert bad == want
