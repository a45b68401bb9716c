"""Streaming a JSON array: its elements one at a time, as the bytes arrive.

The standard library's decoder does the parsing, element by element: it keeps every number
exact (integers of any size, floats as ``json`` reads them), which the C backends of streaming
JSON libraries do not (yajl overflows past 2**63).
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterable, Iterator
from typing import Any

__all__ = ["iter_json_array"]

_WS = re.compile(r"[ \t\n\r]*")


class _ArrayScanner:
    """Splits the text of a JSON array into its elements as the text arrives."""

    _BEFORE, _VALUE_OR_END, _COMMA_OR_END, _VALUE, _DONE = range(5)

    def __init__(self) -> None:
        self.decoder = json.JSONDecoder()
        self.buf = ""
        self.pos = 0
        self.state = self._BEFORE
        self.wait_for = 0

    def feed(self, text: str, *, final: bool) -> Iterator[Any]:
        """Add text; yield every element that is now complete."""
        self.buf = self.buf[self.pos :] + text
        self.pos = 0
        if len(self.buf) < self.wait_for and not final:
            return
        self.wait_for = 0
        while True:
            self.pos = _skip_ws(self.buf, self.pos)
            if self.pos >= len(self.buf):
                return
            if self.state in (self._VALUE_OR_END, self._VALUE) and not (
                self.state == self._VALUE_OR_END and self.buf[self.pos] == "]"
            ):
                decoded = self._value(final)
                if decoded is None:
                    return
                yield decoded[0]
            else:
                self._punctuation(self.buf[self.pos])

    def _punctuation(self, char: str) -> None:
        expected = {
            self._BEFORE: {"[": self._VALUE_OR_END},
            self._VALUE_OR_END: {"]": self._DONE},
            self._COMMA_OR_END: {",": self._VALUE, "]": self._DONE},
        }.get(self.state, {})
        if char not in expected:
            near = self.buf[self.pos : self.pos + 20]
            raise ValueError(f"not a JSON array: unexpected {near!r}")
        self.state = expected[char]
        self.pos += 1

    def _value(self, final: bool) -> tuple[Any] | None:
        try:
            value, end = self.decoder.raw_decode(self.buf, self.pos)
        except json.JSONDecodeError:
            if final:
                raise
            # Try again once the buffer has doubled: linear in the element's size.
            self.wait_for = 2 * (len(self.buf) - self.pos)
            return None
        if (
            not final
            and not isinstance(value, dict | list | str)
            and (end >= len(self.buf) or self.buf[end] not in " \t\n\r,]")
        ):
            self.wait_for = 2 * (len(self.buf) - self.pos)  # a number may go on
            return None
        self.pos = end
        self.state = self._COMMA_OR_END
        return (value,)


def _skip_ws(text: str, pos: int) -> int:
    match = _WS.match(text, pos)
    return match.end() if match else pos


def iter_json_array(chunks: Iterable[bytes]) -> Iterator[Any]:
    """Yield the elements of a JSON array that arrives in byte chunks, one at a time.

    Memory holds about one element plus one chunk. Raises ``ValueError`` when the text is not
    a JSON array or ends early.
    """
    text = codecs.getincrementaldecoder("utf-8")()
    scanner = _ArrayScanner()
    for chunk in chunks:
        yield from scanner.feed(text.decode(chunk), final=False)
    yield from scanner.feed(text.decode(b"", final=True), final=True)
    if scanner.state != scanner._DONE:
        raise ValueError("the JSON array ended early (truncated download?)")
