"""The multipart reader: any binary part comes back byte for byte; broken bodies are refused."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labelvault.http.multipart import iter_multipart

_BOUNDARY = "lvB0undary"


def _body(parts: list[bytes]) -> bytes:
    return (
        b"".join(
            b'--%s\r\nContent-Disposition: form-data; name="%d"; filename="f %d.png"\r\n'
            b"Content-Type: application/octet-stream\r\n\r\n"
            % (_BOUNDARY.encode(), i, i)
            + part
            + b"\r\n"
            for i, part in enumerate(parts)
        )
        + b"--%s--\r\n" % _BOUNDARY.encode()
    )


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=300).filter(lambda b: _BOUNDARY.encode() not in b), max_size=5))
def test_parts_round_trip(parts: list[bytes]) -> None:
    found = list(iter_multipart(_body(parts), f'multipart/form-data; boundary="{_BOUNDARY}"'))
    assert [(p.name, p.filename, p.content) for p in found] == [
        (str(i), f"f {i}.png", part) for i, part in enumerate(parts)
    ]


@pytest.mark.parametrize("cut", [10, 60, -8])
def test_a_truncated_body_is_refused(cut: int) -> None:
    body = _body([b"\x00\xff\r\n--almost", b"xy"])
    with pytest.raises(ValueError, match=r"."):
        list(iter_multipart(body[:cut], f"multipart/form-data; boundary={_BOUNDARY}"))
