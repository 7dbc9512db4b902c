import json
import math
from typing import Any

import cbor2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mfm_store import (
    ArtifactKind,
    DomainEvent,
    ErrorCategory,
    ErrorInfo,
    EventEnvelope,
    IdValidationError,
    RunCompleted,
    RunId,
    RunStarted,
    RunStatus,
    StateCompleted,
    StateEntered,
    StateError,
    StateFailed,
    event_from_json,
)
from mfm_store.events import decode_event, encode_event

RUN = "3f2b8c1e-6a4d-4f7e-9b1a-2c5d8e7f9a01"
A = "a" * 64
B = "b" * 64

CASES: list[tuple[Any, dict[str, Any]]] = [
    (RunStarted("op", A, B),
     {"Kernel": {"RunStarted": {"op_id": "op", "manifest_id": A, "initial_snapshot_id": B}}}),
    (StateEntered("machine.main.s1", 0, A),
     {"Kernel": {"StateEntered": {"state_id": "machine.main.s1", "attempt": 0,
                                  "base_snapshot_id": A}}}),
    (StateCompleted("machine.main.s1", B),
     {"Kernel": {"StateCompleted": {"state_id": "machine.main.s1", "context_snapshot_id": B}}}),
    (StateFailed("machine.main.s1",
                 StateError("machine.main.s1",
                            ErrorInfo("flaky", ErrorCategory.UNKNOWN, True, "flaky"))),
     {"Kernel": {"StateFailed": {
         "state_id": "machine.main.s1",
         "error": {"state_id": "machine.main.s1",
                   "info": {"code": "flaky", "category": "Unknown", "retryable": True,
                            "message": "flaky", "details": None}},
         "failure_snapshot_id": None}}}),
    (StateFailed("machine.main.s1",
                 StateError(None, ErrorInfo("x", ErrorCategory.RPC, False, "m", {"d": [1]})), A),
     {"Kernel": {"StateFailed": {
         "state_id": "machine.main.s1",
         "error": {"state_id": None,
                   "info": {"code": "x", "category": "Rpc", "retryable": False,
                            "message": "m", "details": {"d": [1]}}},
         "failure_snapshot_id": A}}}),
    (RunCompleted(RunStatus.COMPLETED, A),
     {"Kernel": {"RunCompleted": {"status": "Completed", "final_snapshot_id": A}}}),
    (RunCompleted(RunStatus.FAILED),
     {"Kernel": {"RunCompleted": {"status": "Failed", "final_snapshot_id": None}}}),
    (RunCompleted(RunStatus.CANCELLED),
     {"Kernel": {"RunCompleted": {"status": "Cancelled", "final_snapshot_id": None}}}),
    (DomainEvent("fact_recorded", {"key": "k", "payload_id": A, "meta": {}}),
     {"Domain": {"name": "fact_recorded", "payload": {"key": "k", "payload_id": A, "meta": {}},
                 "payload_ref": None}}),
    (DomainEvent("artifact_written", {"x": 1.5}, B),
     {"Domain": {"name": "artifact_written", "payload": {"x": 1.5}, "payload_ref": B}}),
]


@pytest.mark.parametrize(("event", "expected"), CASES, ids=lambda x: type(x).__name__)
def test_event_interchange_form(event: Any, expected: dict[str, Any]) -> None:
    assert event.to_json() == expected
    assert event_from_json(expected) == event
    assert type(event).from_json(expected) == event
    # JSON text and CBOR both round-trip exactly
    assert event_from_json(json.loads(json.dumps(expected))) == event
    assert decode_event(encode_event(event)) == event


def test_envelope_interchange_form() -> None:
    env = EventEnvelope(RunId.parse(RUN), 1, None, RunStarted("op", A, B))
    expected = {"run_id": RUN, "seq": 1, "ts_millis": None,
                "event": {"Kernel": {"RunStarted": {"op_id": "op", "manifest_id": A,
                                                    "initial_snapshot_id": B}}}}
    assert env.to_json() == expected
    assert EventEnvelope.from_json(expected) == env
    stamped = EventEnvelope(RunId.parse(RUN), 7, 1_700_000_000_000, DomainEvent("n"))
    assert EventEnvelope.from_json(stamped.to_json()) == stamped


def test_artifact_kind_spelling() -> None:
    assert ArtifactKind.MANIFEST.to_json() == "Manifest"
    assert ArtifactKind.CONTEXT_SNAPSHOT.to_json() == "ContextSnapshot"
    assert ArtifactKind.FACT_PAYLOAD.to_json() == "FactPayload"
    assert ArtifactKind.SECRET_PAYLOAD.to_json() == "SecretPayload"
    assert ArtifactKind.OUTPUT.to_json() == "Output"
    assert ArtifactKind.other("name").to_json() == {"Other": "name"}
    for kind in [ArtifactKind.FACT_PAYLOAD, ArtifactKind.other("x:y")]:
        assert ArtifactKind.from_json(kind.to_json()) == kind
        assert ArtifactKind.parse(str(kind)) == kind
    with pytest.raises(ValueError):
        ArtifactKind.from_json("Nope")


@pytest.mark.parametrize("bad", [
    {"Kernel": {"RunStarted": {"op_id": "Bad-Op", "manifest_id": A, "initial_snapshot_id": B}}},
    {"Kernel": {"StateEntered": {"state_id": "machine.main", "attempt": 0,
                                 "base_snapshot_id": A}}},
    {"Kernel": {"StateCompleted": {"state_id": "a.b.c", "context_snapshot_id": "xyz"}}},
    {"Domain": {"name": "n", "payload": None, "payload_ref": "ABC"}},
])
def test_decoding_revalidates_ids(bad: dict[str, Any]) -> None:
    with pytest.raises(IdValidationError):
        event_from_json(bad)


@pytest.mark.parametrize("bad", [
    {}, {"Kernel": {}}, {"Kernel": {"Nope": {}}}, {"Domain": {"name": "n"}}, [], "Kernel",
    {"Kernel": {"StateEntered": {"state_id": "a.b.c", "attempt": -1, "base_snapshot_id": A}}},
    {"Kernel": {"RunCompleted": {"status": "Done", "final_snapshot_id": None}}},
])
def test_malformed_events_rejected(bad: Any) -> None:
    with pytest.raises(ValueError):
        event_from_json(bad)


_text = st.text(max_size=10)
_payload = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | _text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=20,
)
_ids = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)
_state = st.sampled_from(["machine.main.s1", "a.b.c", "m_1.step_2.state_3"])
_info = st.builds(ErrorInfo, st.text(max_size=8), st.sampled_from(list(ErrorCategory)),
                  st.booleans(), _text, _payload)
_events = st.one_of(
    st.builds(RunStarted, st.sampled_from(["op", "portfolio_tracker"]), _ids, _ids),
    st.builds(StateEntered, _state, st.integers(0, 2**32 - 1), _ids),
    st.builds(StateCompleted, _state, _ids),
    st.builds(StateFailed, _state, st.builds(StateError, st.none() | _state, _info),
              st.none() | _ids),
    st.builds(RunCompleted, st.sampled_from(list(RunStatus)), st.none() | _ids),
    st.builds(DomainEvent, st.text(min_size=1, max_size=10), _payload, st.none() | _ids),
)


@given(_events)
def test_cbor_round_trip(event: Any) -> None:
    assert decode_event(encode_event(event)) == event


@given(st.builds(DomainEvent,
                 st.text(min_size=1, max_size=300) | st.sampled_from(["n" * 70_000]),
                 _payload, st.none() | _ids))
def test_domain_bodies_are_cbor_of_the_interchange_form(event: DomainEvent) -> None:
    # Domain bodies are framed by hand for speed; they must be exactly cbor2's encoding of
    # the interchange form with the payload in its given order (sorting happens on output).
    stored = {"Domain": {"name": event.name, "payload": event.payload,
                         "payload_ref": event.payload_ref}}
    assert encode_event(event) == cbor2.dumps(stored)
    assert cbor2.loads(encode_event(event)) == event.to_json()


def test_event_names_must_be_text() -> None:
    with pytest.raises(ValueError, match="name"):
        encode_event(DomainEvent(["not", "text"], 1))  # type: ignore[arg-type]


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_float_payloads_round_trip_bit_exact(f: float) -> None:
    back = decode_event(encode_event(DomainEvent("n", [f])))
    assert isinstance(back, DomainEvent)
    assert math.copysign(1, back.payload[0]) == math.copysign(1, f)
    assert back.payload[0] == f


@pytest.mark.parametrize("payload", [float("nan"), float("inf"), {1: "a"}, {"s": {1}},
                                     (1, 2), b"bytes", 2**64, -(2**63) - 1])
def test_non_json_payloads_cannot_be_encoded(payload: Any) -> None:
    with pytest.raises(ValueError):
        encode_event(DomainEvent("n", payload))
