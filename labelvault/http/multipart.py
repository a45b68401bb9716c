"""Read ``multipart/form-data`` bodies (some platform answers are multipart, not JSON).

The parsing is python-multipart's (the parser Starlette uses): its state machine handles
boundaries that straddle chunks, quoted parameters and binary parts, at the speed of a split.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

__all__ = ["MultipartPart", "boundary_of", "iter_multipart"]


@dataclass(frozen=True)
class MultipartPart:
    """One part: its headers (lowercased names), form ``name``, optional ``filename``, body."""

    headers: dict[str, str]
    name: str | None
    filename: str | None
    content: bytes


def boundary_of(content_type: str) -> str:
    """The boundary parameter of a multipart content type; ValueError when there is none."""
    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        raise ValueError(f"content type {content_type!r} has no multipart boundary")
    return boundary.decode("latin-1")


class _Collector:
    """python-multipart callbacks that gather whole parts."""

    def __init__(self) -> None:
        self.parts: list[MultipartPart] = []
        self.headers: dict[str, str] = {}
        self.field = bytearray()
        self.value = bytearray()
        self.content = bytearray()
        self.ended = False

    def part_begin(self) -> None:
        self.headers, self.content = {}, bytearray()

    def header_field(self, data: bytes, start: int, end: int) -> None:
        self.field += data[start:end]

    def header_value(self, data: bytes, start: int, end: int) -> None:
        self.value += data[start:end]

    def header_end(self) -> None:
        name = self.field.decode("utf-8", errors="replace").strip().lower()
        self.headers[name] = self.value.decode("utf-8", errors="replace").strip()
        self.field, self.value = bytearray(), bytearray()

    def part_data(self, data: bytes, start: int, end: int) -> None:
        self.content += data[start:end]

    def part_end(self) -> None:
        _, params = parse_options_header(self.headers.get("content-disposition", ""))
        name, filename = params.get(b"name"), params.get(b"filename")
        self.parts.append(
            MultipartPart(
                headers=self.headers,
                name=name.decode("utf-8", errors="replace") if name is not None else None,
                filename=filename.decode("utf-8", errors="replace") if filename else None,
                content=bytes(self.content),
            )
        )

    def end(self) -> None:
        self.ended = True


def iter_multipart(body: bytes, content_type: str) -> Iterator[MultipartPart]:
    """Yield the parts of a multipart body; ValueError when it is not well formed."""
    collector = _Collector()
    parser = MultipartParser(
        boundary_of(content_type).encode("latin-1"),
        callbacks={
            "on_part_begin": collector.part_begin,
            "on_header_field": collector.header_field,
            "on_header_value": collector.header_value,
            "on_header_end": collector.header_end,
            "on_part_data": collector.part_data,
            "on_part_end": collector.part_end,
            "on_end": collector.end,
        },
    )
    try:
        parser.write(body)
        parser.finalize()
    except MultipartParseError as exc:
        raise ValueError(f"multipart body is not well formed: {exc}") from None
    if not collector.ended:
        raise ValueError("multipart body has no closing boundary")
    yield from collector.parts
