"""JSON through orjson, giving what the standard library gives.

orjson decodes several times faster than :func:`json.loads`, which matters where a restore
reads every row's raw JSON and every answer of the platform. Where the two could differ,
the standard library decodes: orjson refuses ``NaN``, ``Infinity``, numbers out of the
double range and lone surrogates (it raises, and :func:`loads` falls back), and it turns an
integer beyond 64 bits into a float, so a text with a run of 19 digits or more goes to the
standard library first.

:func:`body` encodes a request's JSON body as httpx's ``json=`` would (compact, keys in their
order), in orjson's float notation, which decodes to the same numbers; a value orjson refuses,
and NaN or an infinity (which httpx refuses and orjson would write as ``null``), go through
the standard library, which raises as httpx does.

:func:`canonical` encodes the same way round, for the canonical text every row's raw JSON and
fingerprint are made of: it must stay byte for byte what :func:`json.dumps` gives, or every
fingerprint would change. orjson writes the same text, except in three cases that the
standard library then encodes instead:

- a value it cannot take (an integer beyond 64 bits, a key that is not a string, a lone
  surrogate) makes it raise;
- a float below 10^-4 or from 10^16 up, which Python writes with an exponent (``1e-05``,
  ``1e+16``) and orjson as ``0.00001`` or ``1e16``: such a text holds ``e-``, ``e+`` or
  ``0.0000``, and so may a string, which only costs the slower path;
- ``NaN`` and the infinities, which orjson writes as ``null``: a text holding ``null`` must
  decode back to the value.
"""

from __future__ import annotations

import json
from typing import Any, Final

import orjson

__all__ = ["body", "canonical", "loads"]

#: Every digit to ``0``, so that a run of digits is a run of zeros.
_DIGITS_TO_ZERO: Final = bytes.maketrans(b"123456789", b"000000000")
#: A run of digits that may be an integer orjson cannot hold exactly.
_LONG_RUN: Final = b"0" * 19


def loads(data: str | bytes) -> Any:
    """The value of the JSON text ``data``, exactly as :func:`json.loads` decodes it."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if _LONG_RUN not in raw.translate(_DIGITS_TO_ZERO):  # a C pass, unlike a regex search
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    return json.loads(data)


#: Sorted keys; a date, time or dataclass is refused as by the standard library.
_CANONICAL_OPTIONS: Final = (
    orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
)


def canonical(value: Any) -> str:
    """``json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
    allow_nan=True)``, byte for byte for every value it encodes, several times faster."""
    try:
        text = orjson.dumps(value, option=_CANONICAL_OPTIONS)
    except orjson.JSONEncodeError:
        return _standard_canonical(value)
    # What may mark a float that orjson writes otherwise than Python (the module docstring).
    if b"e-" in text or b"e+" in text or b"0.0000" in text:
        return _standard_canonical(value)
    if _lost_nonfinite(text, value):
        return _standard_canonical(value)
    return text.decode("utf-8")


def _standard_canonical(value: Any) -> str:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=True
    )


def body(value: Any) -> bytes:
    """The JSON bytes of a request body: what httpx's ``json=`` sends, several times faster.
    NaN and the infinities raise :class:`ValueError`, as they do in httpx."""
    try:
        text = orjson.dumps(value, option=orjson.OPT_PASSTHROUGH_DATETIME)
    except orjson.JSONEncodeError:
        return _standard_body(value)
    if _lost_nonfinite(text, value):
        return _standard_body(value)
    return text


def _lost_nonfinite(text: bytes, value: Any) -> bool:
    """Whether orjson's ``text`` of ``value`` may hold a NaN or an infinity written as
    ``null``: it holds ``null`` and does not decode back to ``value``."""
    return b"null" in text and orjson.loads(text) != value


def _standard_body(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode(
        "utf-8"
    )
