"""Canonical JSON is byte for byte the standard library's text, however it is written: every
stored fingerprint hashes that text."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labelvault.snapshot.schema import canonical_json, fingerprint


def standard(value: Any) -> str:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=True
    )


_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.floats(min_value=-1e-3, max_value=1e-3)
    | st.floats(min_value=1e14, max_value=1e18)
    | st.text()
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=30,
)


@settings(max_examples=1000)
@given(_VALUES)
def test_canonical_json_is_the_standard_librarys_text(value: Any) -> None:
    assert canonical_json(value) == standard(value)


class Kind(StrEnum):
    FIGURE = "figure"


@pytest.mark.parametrize(
    "value",
    [
        6.103515625e-05,  # orjson: 0.00006103515625
        1e-05,
        0.0001,
        1e16,  # orjson: 1e16
        1.2345678901234568e17,
        123.45678901234567,
        -0.0,
        float("nan"),  # orjson: null
        [float("inf"), float("-inf")],
        2**64,  # orjson refuses it
        {"b": 1, "a": [1, 2.5, "x"], "c": {"é": "\u2028", "ctl": "\x00\x1f\x7f"}},
        {1: "a key that is not a string"},
        (1, 2),  # a tuple is written as a list
        {"kind": Kind.FIGURE},
        "1e5 in a string, and 0.00001 too",
    ],
)
def test_what_orjson_writes_otherwise_is_the_standard_librarys(value: Any) -> None:
    assert canonical_json(value) == standard(value)


def test_what_the_standard_library_refuses_is_still_refused() -> None:
    with pytest.raises(TypeError):
        canonical_json({"at": datetime(2026, 1, 1, tzinfo=UTC)})  # orjson would write it


def test_a_fingerprint_hashes_the_canonical_text() -> None:
    """Sorted keys, no spaces, UTF-8 as it is: a change of the text would change every
    fingerprint stored so far."""
    value = {"b": [1.5, None], "a": "ü"}
    assert canonical_json(value) == '{"a":"ü","b":[1.5,null]}'
    assert fingerprint(value) == hashlib.sha256('{"a":"ü","b":[1.5,null]}'.encode()).hexdigest()
