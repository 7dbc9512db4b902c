import hashlib
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import load_vector
from mfm_store import (
    CanonicalJsonError,
    ErrorCategory,
    ErrorInfo,
    FloatNotAllowedError,
    SecretsNotAllowedError,
    artifact_id_for_bytes,
    artifact_id_for_json,
    canonical_json_bytes,
    json_contains_secrets,
    redact_error_info,
    string_contains_secrets,
)

CANON = load_vector("canonical_json.json")
SECRETS = load_vector("secrets.json")
ERRORS = {"FloatNotAllowed": FloatNotAllowedError, "SecretsNotAllowed": SecretsNotAllowedError}


@pytest.mark.parametrize("case", CANON["canonical"], ids=lambda c: c["name"])
def test_canonical_vectors(case: dict[str, Any]) -> None:
    raw = canonical_json_bytes(case["value"])
    assert raw == case["canonical"].encode("utf-8")
    assert artifact_id_for_json(case["value"]) == case["artifact_id"]
    assert artifact_id_for_bytes(raw) == case["artifact_id"]


@pytest.mark.parametrize("case", CANON["rejected"], ids=lambda c: c["name"])
def test_rejected_vectors(case: dict[str, Any]) -> None:
    value = json.loads(case["value_json"]) if "value_json" in case else case["value"]
    with pytest.raises(ERRORS[case["error"]]) as info:
        canonical_json_bytes(value)
    assert isinstance(info.value, CanonicalJsonError)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("case", CANON["bytes"], ids=lambda c: c["bytes_utf8"] or "empty")
def test_bytes_vectors(case: dict[str, Any]) -> None:
    assert artifact_id_for_bytes(case["bytes_utf8"].encode()) == case["artifact_id"]


@pytest.mark.parametrize("text", SECRETS["positive"])
def test_secret_strings_positive(text: str) -> None:
    assert string_contains_secrets(text)


@pytest.mark.parametrize("text", SECRETS["negative"])
def test_secret_strings_negative(text: str) -> None:
    assert not string_contains_secrets(text)


@pytest.mark.parametrize("value", SECRETS["json_positive"])
def test_secret_json_positive(value: Any) -> None:
    assert json_contains_secrets(value)
    with pytest.raises(SecretsNotAllowedError):
        canonical_json_bytes(value)


@pytest.mark.parametrize("value", SECRETS["json_negative"])
def test_secret_json_negative(value: Any) -> None:
    assert not json_contains_secrets(value)
    canonical_json_bytes(value)


def test_only_ascii_letters_are_folded() -> None:
    # KELVIN SIGN lowercases to "k" with str.lower(); the policy folds ASCII only.
    assert not string_contains_secrets("API_\u212aEY")
    assert string_contains_secrets("API_KEY")


def test_booleans_are_not_integers() -> None:
    assert canonical_json_bytes([True, False, 1, 0]) == b"[true,false,1,0]"


@pytest.mark.parametrize("bad", [{1: "a"}, b"bytes", {"s": {1, 2}}, object()])
def test_non_json_rejected(bad: Any) -> None:
    with pytest.raises(CanonicalJsonError):
        canonical_json_bytes(bad)


def test_lone_surrogate_rejected() -> None:
    with pytest.raises(CanonicalJsonError):
        canonical_json_bytes("\ud800")


def test_redact_error_info() -> None:
    info = ErrorInfo("c", ErrorCategory.RPC, True, "bad password here", {"x": 1})
    red = redact_error_info(info)
    assert red == ErrorInfo("c", ErrorCategory.RPC, True, "error details redacted", None)
    plain = ErrorInfo("c", ErrorCategory.RPC, False, "timeout", {"x": 1})
    assert redact_error_info(plain) == ErrorInfo("c", ErrorCategory.RPC, False, "timeout", None)


# Property tests. Text is drawn from a safe alphabet so that generated strings hold no secrets.
_safe_text = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="aeiou"),
                     max_size=12)
_ints = st.integers(min_value=-(2**63), max_value=2**64 - 1)
_json = st.recursive(
    st.none() | st.booleans() | _ints | _safe_text,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(_safe_text, inner, max_size=5),
    max_leaves=30,
)


@given(_json)
def test_canonical_parses_back_to_the_same_value(value: Any) -> None:
    raw = canonical_json_bytes(value)
    assert json.loads(raw) == value
    assert artifact_id_for_json(value) == hashlib.sha256(raw).hexdigest()


@given(st.dictionaries(_safe_text, _json, max_size=8))
def test_canonical_is_stable_under_key_order(value: dict[str, Any]) -> None:
    reversed_order = dict(reversed(list(value.items())))
    assert canonical_json_bytes(value) == canonical_json_bytes(reversed_order)


def _outside_strings(text: str) -> str:
    out, in_string, escaped = [], False, False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        else:
            out.append(ch)
    return "".join(out)


@given(_json)
def test_canonical_has_no_whitespace_outside_strings(value: Any) -> None:
    outside = _outside_strings(canonical_json_bytes(value).decode())
    assert not any(ch.isspace() for ch in outside)


@given(_json, st.floats(allow_nan=False))
def test_any_float_is_rejected(value: Any, f: float) -> None:
    with pytest.raises(FloatNotAllowedError):
        canonical_json_bytes([value, {"f": f}])
