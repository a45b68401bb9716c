"""Fast JSON decoding gives exactly what the standard library gives, value and type."""

from __future__ import annotations

import json
import math
from typing import Any

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
