"""Read ``multipart/form-data`` bodies (some platform answers are multipart, not JSON)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["MultipartPart", "boundary_of", "iter_multipart"]

_BOUNDARY = re.compile(r'boundary="?([^";]+)"?', re.IGNORECASE)
_PARAM = re.compile(r';\s*([A-Za-z0-9_*-]+)="((?:\\.|[^"\\])*)"|;\s*([A-Za-z0-9_*-]+)=([^;\s]+)')


@dataclass(frozen=True)
class MultipartPart:
    """One part: its headers (lowercased names), form ``name``, optional ``filename``, body."""

    headers: dict[str, str]
    name: str | None
    filename: str | None
    content: bytes


def boundary_of(content_type: str) -> str:
    """The boundary parameter of a multipart content type; ValueError when there is none."""
    match = _BOUNDARY.search(content_type)
    if not match:
        raise ValueError(f"content type {content_type!r} has no multipart boundary")
    return match.group(1)


def _disposition(value: str) -> dict[str, str]:
    params: dict[str, str] = {}
    for match in _PARAM.finditer(value):
        if match.group(1):
            params[match.group(1).lower()] = match.group(2).replace('\\"', '"')
        else:
            params[match.group(3).lower()] = match.group(4)
    return params


def iter_multipart(body: bytes, content_type: str) -> Iterator[MultipartPart]:
    """Yield the parts of a multipart body; ValueError when it is not well formed."""
    delimiter = b"--" + boundary_of(content_type).encode("latin-1")
    chunks = body.split(delimiter)
    if len(chunks) < 2 or not chunks[-1].startswith(b"--"):
        raise ValueError("multipart body has no closing boundary")
    for raw in chunks[1:-1]:
        chunk = raw[2:] if raw.startswith(b"\r\n") else raw
        head, sep, content = chunk.partition(b"\r\n\r\n")
        if not sep:
            raise ValueError("multipart part has no header/body separator")
        if content.endswith(b"\r\n"):
            content = content[:-2]
        headers: dict[str, str] = {}
        for line in head.decode("utf-8", errors="replace").split("\r\n"):
            if ":" in line:
                key, _, value = line.partition(":")
                headers[key.strip().lower()] = value.strip()
        disposition = _disposition(headers.get("content-disposition", ""))
        yield MultipartPart(
            headers=headers,
            name=disposition.get("name"),
            filename=disposition.get("filename"),
            content=content,
        )
