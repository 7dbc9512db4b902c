"""The store's secret search skips strings already found clean; it must never miss what the
full policy finds, the first time or any later time."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from mfm_store._rules import has_secrets
from mfm_store.canonical import ASCII_LOWER, CLEAN_STRINGS, SECRET_RE, looks_like_mnemonic

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


def _policy(value: Any) -> bool:
    """The policy by its definition: any string, object keys included, one at a time."""
    if isinstance(value, str):  # without the memo of clean strings
        return SECRET_RE.search(value.translate(ASCII_LOWER)) is not None or (
            looks_like_mnemonic(value))
    if isinstance(value, dict):
        return any(_policy(k) or _policy(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_policy(v) for v in value)
    return False


@given(_TEXT, _JSON)
def test_the_cached_search_never_misses_a_secret(name: str, payload: Any) -> None:
    expected = _policy([name, payload])
    assert has_secrets([name, payload]) == expected
    assert has_secrets([name, payload]) == expected  # with its strings now remembered
    assert has_secrets([[payload], {"k": name}]) == expected
    assert has_secrets(payload) == _policy(payload)  # an object alone takes a quicker path
    assert has_secrets({name: payload}) == expected


def test_only_clean_strings_are_remembered() -> None:
    assert has_secrets({"note": "my Password is"})
    assert "my Password is" not in CLEAN_STRINGS
    assert has_secrets({"note": "my Password is"})
    words = " ".join(["abandon"] * 12)
    assert has_secrets({"m": words}) and words not in CLEAN_STRINGS
    assert not has_secrets({"i": 1, "name": "abc", "items": [1, 2, 3]})
    assert "abc" in CLEAN_STRINGS and "items" in CLEAN_STRINGS
    assert not has_secrets({"i": 1, "name": "abc", "items": [1, 2, 3]})
