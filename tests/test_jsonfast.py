"""Fast JSON decoding gives exactly what the standard library gives, value and type."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from labelvault import jsonfast

_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=20,
)


def same(left: Any, right: Any) -> bool:
    """Equal, of the same types all the way down (1 and 1.0 differ; NaN equals NaN)."""
    if type(left) is not type(right):
        return False
    if isinstance(left, float):
        return (math.isnan(left) and math.isnan(right)) or repr(left) == repr(right)
    if isinstance(left, list):
        return len(left) == len(right) and all(map(same, left, right))
    if isinstance(left, dict):
        return list(left) == list(right) and all(same(left[k], right[k]) for k in left)
    return bool(left == right)


@given(_VALUES)
def test_decodes_as_the_standard_library_does(value: Any) -> None:
    text = json.dumps(value, ensure_ascii=False)
    assert same(jsonfast.loads(text), json.loads(text))
    assert same(jsonfast.loads(text.encode("utf-8", "surrogatepass")), json.loads(text))


def test_what_orjson_would_change_goes_to_the_standard_library() -> None:
    for text in (
        "18446744073709551616",  # beyond 64 bits: orjson makes it a float
        "-9223372036854775809",
        "[123456789012345678901234567890, 0.5]",
        "NaN",
        "[Infinity, -Infinity]",
        "1e400",
        '"\\ud800"',  # a lone surrogate
        '{"a": 1, "a": 2}',
    ):
        assert same(jsonfast.loads(text), json.loads(text)), text
    assert type(jsonfast.loads("18446744073709551616")) is int


def standard_canonical(value: Any) -> str:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=True
    )


_FLOATS_EVERY_RANGE = st.floats(allow_nan=True, allow_infinity=True) | st.builds(
    lambda mantissa, exponent: mantissa * 10.0**exponent,
    st.floats(min_value=-10, max_value=10, allow_nan=False),
    st.integers(min_value=-300, max_value=300),
)
_ENCODABLE = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | _FLOATS_EVERY_RANGE
    | st.text(),
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text() | st.integers(), inner, max_size=5)
    ),
    max_leaves=20,
)


@given(_ENCODABLE)
def test_canonical_text_is_the_standard_librarys_byte_for_byte(value: Any) -> None:
    try:
        expected = standard_canonical(value)
    except TypeError:  # keys of mixed types cannot be sorted
        return
    assert jsonfast.canonical(value) == expected


def test_what_orjson_writes_otherwise_is_encoded_by_the_standard_library() -> None:
    for value in (
        1e-05,  # orjson: 0.00001
        [2.5e-07, 1e16, -1.2345678901234567e300],  # orjson: 2.5e-7, 1e16, 1.2345678901234567e300
        float("nan"),  # orjson: null
        {"b": [float("inf")], "a": None},
        -float("inf"),
        2**70,  # orjson refuses
        {2: "a", 1: "b"},  # keys that are not strings
        "\ud800",  # a lone surrogate
        ("tuple", 0.0001, -0.0),
        {"é": "e-mail", "z": "\u2028", "a": "0.00001 e+"},
    ):
        assert jsonfast.canonical(value) == standard_canonical(value), value
    assert jsonfast.canonical(float("nan")) == "NaN"
    assert jsonfast.canonical(1e-05) == "1e-05"


def httpx_body(value: Any) -> bytes:
    """What httpx's ``json=`` sends."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode(
        "utf-8"
    )


@given(_ENCODABLE)
def test_a_request_body_decodes_to_what_httpx_would_send(value: Any) -> None:
    try:
        expected = httpx_body(value)
    except ValueError:  # NaN or an infinity
        with pytest.raises(ValueError, match="JSON compliant"):
            jsonfast.body(value)
        return
    sent = jsonfast.body(value)
    assert same(json.loads(sent), json.loads(expected))  # same keys in the same order


def test_a_request_body_refuses_nan_and_keeps_key_order() -> None:
    for value in ({"a": [1.0, float("nan")]}, [float("inf")], {"x": -float("inf")}):
        with pytest.raises(ValueError, match="JSON compliant"):
            jsonfast.body(value)
    assert jsonfast.body({"b": 1, "a": [None, "é", 0.5], 3: "x"}) == httpx_body(
        {"b": 1, "a": [None, "é", 0.5], 3: "x"}
    )
    assert jsonfast.body({"b": 1, "a": None}) == b'{"b":1,"a":null}'
