"""Key validation and the reversible encoding of foreign names into key segments."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from labelvault.errors import InvalidKey
from labelvault.storage.keys import (
    MAX_KEY_BYTES,
    join_key,
    safe_segment,
    unsafe_segment,
    validate_key,
    validate_prefix,
)
from tests.storage.conformance import BAD_KEYS, BAD_PREFIXES, UNICODE_KEYS


@given(st.text(min_size=1, max_size=200))
def test_safe_segment_round_trips_any_text(name: str) -> None:
    segment = safe_segment(name)
    assert unsafe_segment(segment) == name
    assert "/" not in segment
    assert segment not in (".", "..")
    assert validate_key(segment) == segment
    assert validate_key(f"root/{segment}/leaf") == f"root/{segment}/leaf"


@given(st.text(min_size=1, max_size=50), st.text(min_size=1, max_size=50))
def test_safe_segment_is_injective(first: str, second: str) -> None:
    if first != second:
        assert safe_segment(first) != safe_segment(second)


def test_safe_segment_refuses_the_empty_name() -> None:
    with pytest.raises(InvalidKey):
        safe_segment("")


@pytest.mark.parametrize("key", BAD_KEYS, ids=repr)
def test_bad_keys(key: str) -> None:
    with pytest.raises(InvalidKey) as caught:
        validate_key(key, store="test")
    assert caught.value.key == key
    assert caught.value.store == "test"


@pytest.mark.parametrize("key", [*UNICODE_KEYS, "a", "a/b/c", "x" * MAX_KEY_BYTES, ".hidden"])
def test_good_keys(key: str) -> None:
    assert validate_key(key) == key


@pytest.mark.parametrize("prefix", BAD_PREFIXES, ids=repr)
def test_bad_prefixes(prefix: str) -> None:
    with pytest.raises(InvalidKey):
        validate_prefix(prefix)


@pytest.mark.parametrize("prefix", ["", "a", "a/", "a/b/", "a/b"])
def test_good_prefixes(prefix: str) -> None:
    assert validate_prefix(prefix) == prefix


def test_join_key() -> None:
    assert join_key("a", "b/", "/c") == "a/b/c"
    assert join_key("a", "", "c") == "a/c"
    with pytest.raises(InvalidKey):
        join_key("a", "..", "c")
