"""The store's quick secret search over an event's encoded body never misses what the full
policy finds (it may only send more events to the full scan)."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from mfm_store._rules import has_secrets, may_hold_secrets
from mfm_store.events import DomainEvent, encode_event

_WORDS = st.sampled_from(["abandon", "ability", "able", "about", "zoo", "wrong", "x"])
_SEPARATORS = st.sampled_from([" ", "\t", "\n", "\u00a0", "\u1680", "\u2003", "\u3000",
                               "\u2028", "\x85", "  "])


@st.composite
def _mnemonics(draw: st.DrawFn) -> str:
    words = draw(st.lists(_WORDS, min_size=11, max_size=25))
    seps = draw(st.lists(_SEPARATORS, min_size=len(words), max_size=len(words)))
    return "".join(w + s for w, s in zip(words, seps, strict=True)).strip()


_NEEDLES = st.sampled_from(["password", "PassPhrase", "api_key", "X-Api-Key", "Bearer abc",
                            "seed phrase", "AWS_SECRET_ACCESS_KEY", "refresh_token"])
_TEXT = st.one_of(st.text(max_size=30), _mnemonics(),
                  st.builds(lambda a, n, b: a + n + b, st.text(max_size=5), _NEEDLES,
                            st.text(max_size=5)))
_JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), _TEXT),
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(_TEXT, inner, max_size=4)),
    max_leaves=12)


def _body(name: str, payload: Any) -> bytes:
    return encode_event(DomainEvent(name, payload))


@given(_TEXT.filter(bool), _JSON)
def test_the_byte_search_never_misses_a_secret(name: str, payload: Any) -> None:
    try:
        body = _body(name, payload)
    except ValueError:
        return  # not storable (a lone surrogate): refused before any scan
    if has_secrets([name, payload]):
        assert may_hold_secrets(body)


def test_plain_payloads_skip_the_full_scan() -> None:
    assert not may_hold_secrets(_body("tick", {"i": 1, "name": "abc", "items": [1, 2, 3]}))
    assert may_hold_secrets(_body("tick", {"note": "my Password is"}))
    words = " ".join(["abandon"] * 12)
    assert may_hold_secrets(_body("tick", {"m": words}))
