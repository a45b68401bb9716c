"""How a table's rows are laid out in its chunk files, per format version.

Readers and writers always deal in a table's *logical* schema (:func:`~.schema.schema_for`):
``fingerprint`` as 64 hex digits, ``raw`` as the platform's whole JSON. The chunk files may
store the same values in a more compact *stored* layout; :func:`encode` turns logical rows into
stored ones and :func:`decode` turns them back, so what every reader sees (restore, SQL, diff,
export) is the same whatever the format that wrote the chunks.

Layouts, by the format version of the manifest that lists the chunks:

- **1** (formats 1 and 2): stored = logical.
- **3** (format 3): nothing is stored twice where it can be derived.

  - ``fingerprint`` is ``fixed_size_binary(32)``: the sha256 itself, not its hex text (32
    bytes instead of 64 characters; nothing to compress in either). All 256 bits are kept: the
    manifest's content sum adds the full fingerprints, so its definition stays the same and a
    version written in any format has the same content hash as the same rows in another.
  - ``raw`` no longer repeats the JSON of its *spliced* column (:data:`SPLICED`: an
    annotation's ``geometry``, an item's ``meta``). When that column's text occurs in ``raw``
    (it does when both are canonical JSON, as platforms write them), its first occurrence is
    replaced by the one-character marker :data:`MARKER` and the row's ``raw_spliced`` flag is
    set; reading puts the column's text back in place of the marker. ``raw`` of a row whose
    text is not found, is too short to be worth it, or which already holds the marker
    character (valid JSON never does) is stored whole, with the flag unset.

A manifest's chunks all share one layout: a capture whose previous version has another layout
writes its tables whole instead of as deltas on that version's chunks.
"""

from __future__ import annotations

import threading
from typing import Final

import pyarrow as pa
import pyarrow.compute as pc

from labelvault.snapshot.schema import schema_for

__all__ = [
    "FINGERPRINT_TYPE",
    "FLAG",
    "LAYOUT_FORMAT",
    "MARKER",
    "SPLICED",
    "bytes_to_hex",
    "decode",
    "decoded_sql",
    "displaced_stored_schema",
    "encode",
    "hex_to_bytes",
    "layout_of",
    "stored_columns",
    "stored_schema",
]

#: The first format version that stores the compact layout.
LAYOUT_FORMAT: Final = 3
#: How a format-3 chunk stores a fingerprint.
FINGERPRINT_TYPE: Final = pa.binary(32)
#: Per table, the column whose text ``raw`` stores only once (format 3).
SPLICED: Final[dict[str, str]] = {"annotations": "geometry", "items": "meta"}
#: Stands in ``raw`` for the spliced column's text; never found unescaped in JSON text.
MARKER: Final = "\x01"
#: The stored column saying that a row's ``raw`` holds the marker.
FLAG: Final = "raw_spliced"
#: Shorter texts are stored twice: the marker and the flag would save nothing.
_MIN_SPLICE_CHARS: Final = 16
#: Batches up to this many rows are unspliced row by row, larger ones with Arrow kernels.
_SMALL_BATCH: Final = 256
_HEX_CHARS: Final = 64
_BINARY_BYTES: Final = 32


def layout_of(format_version: int) -> int:
    """The chunk layout of a manifest written in ``format_version`` (1 or 3)."""
    return LAYOUT_FORMAT if format_version >= LAYOUT_FORMAT else 1


def stored_schema(table: str, layout: int) -> pa.Schema:
    """The columns of ``table``'s chunk files in ``layout``."""
    logical = schema_for(table)
    if layout < LAYOUT_FORMAT:
        return logical
    fields = [
        pa.field("fingerprint", FINGERPRINT_TYPE, nullable=False)
        if field.name == "fingerprint"
        else field
        for field in logical
    ]
    if table in SPLICED:
        fields.append(pa.field(FLAG, pa.bool_()))
    return pa.schema(fields)


def displaced_stored_schema(logical: pa.Schema, layout: int) -> pa.Schema:
    """The displaced-key chunks' stored columns (a binary fingerprint from format 3)."""
    if layout < LAYOUT_FORMAT:
        return logical
    return pa.schema(
        [
            pa.field("fingerprint", FINGERPRINT_TYPE, nullable=False)
            if field.name == "fingerprint"
            else field
            for field in logical
        ]
    )


def stored_columns(table: str, columns: list[str], layout: int) -> list[str]:
    """The stored columns needed to decode the logical ``columns`` of ``table``."""
    if layout < LAYOUT_FORMAT or "raw" not in columns or table not in SPLICED:
        return list(columns)
    extra = [name for name in (SPLICED[table], FLAG) if name not in columns]
    return [*columns, *extra]


# --- fingerprints ---------------------------------------------------------------------------


def hex_to_bytes(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    """64-hex-digit strings (no nulls) as ``fixed_size_binary(32)``, without a Python loop."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    count = len(array)
    if count == 0:
        return pa.array([], FINGERPRINT_TYPE)
    if array.null_count or not pc.all(pc.equal(pc.binary_length(array), _HEX_CHARS)).as_py():
        raise ValueError("fingerprints must be 64 hex digits")
    text = pc.binary_join_element_wise(array, "").cast(pa.string())  # a fresh, unsliced array
    data = text.buffers()[2]
    assert data is not None
    digits = data.to_pybytes()[: count * _HEX_CHARS].decode("ascii")
    return pa.Array.from_buffers(
        FINGERPRINT_TYPE, count, [None, pa.py_buffer(bytes.fromhex(digits))]
    )


class _Offsets:
    """Offsets 0, 64, 128 … shared by every hex column built (grown on demand)."""

    def __init__(self) -> None:
        self._buffer = pa.py_buffer(b"")
        self._count = -1
        self._lock = threading.Lock()

    def first(self, count: int) -> pa.Buffer:
        with self._lock:
            if count > self._count:
                size = max(count, 2 * self._count, 1024)
                self._buffer = pa.array(range(0, (size + 1) * _HEX_CHARS, _HEX_CHARS), pa.int32())
                self._buffer = self._buffer.buffers()[1]
                self._count = size
            return self._buffer.slice(0, (count + 1) * 4)


_OFFSETS: Final = _Offsets()


def bytes_to_hex(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    """``fixed_size_binary(32)`` values (no nulls) as 64 lowercase hex digits."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    count = len(array)
    if array.null_count:
        raise ValueError("fingerprints must not be null")
    data = array.buffers()[1]
    if count == 0 or data is None:
        return pa.array([], pa.string())
    start = array.offset * _BINARY_BYTES
    digits = data.slice(start, count * _BINARY_BYTES).to_pybytes().hex().encode("ascii")
    return pa.Array.from_buffers(
        pa.string(), count, [None, _OFFSETS.first(count), pa.py_buffer(digits)]
    )


# --- rows -----------------------------------------------------------------------------------


def encode(table: str, rows: pa.Table, *, displaced: bool = False) -> pa.Table:
    """Logical rows of ``table`` (or its displaced-key records) in the current stored layout."""
    columns = {name: rows.column(name) for name in rows.column_names}
    columns["fingerprint"] = hex_to_bytes(columns["fingerprint"])
    if displaced:
        schema = displaced_stored_schema(rows.schema, LAYOUT_FORMAT)
        return pa.Table.from_arrays([columns[f.name] for f in schema], schema=schema)
    spliced = SPLICED.get(table)
    if spliced is not None:
        columns["raw"], columns[FLAG] = _splice(columns["raw"], columns[spliced])
    schema = stored_schema(table, LAYOUT_FORMAT)
    return pa.Table.from_arrays([columns[f.name] for f in schema], schema=schema)


def _splice(
    raw: pa.Array | pa.ChunkedArray, text: pa.Array | pa.ChunkedArray
) -> tuple[pa.Array, pa.Array]:
    kept: list[str] = []
    flags: list[bool | None] = []
    for whole, part in zip(raw.to_pylist(), text.to_pylist(), strict=True):
        at = -1
        if part is not None and len(part) >= _MIN_SPLICE_CHARS and MARKER not in whole:
            at = whole.find(part)
        if at < 0:
            kept.append(whole)
            flags.append(None)
        else:
            kept.append(f"{whole[:at]}{MARKER}{whole[at + len(part) :]}")
            flags.append(True)
    return pa.array(kept, pa.string()), pa.array(flags, pa.bool_())


def decode(table: str, batch: pa.RecordBatch, layout: int, schema: pa.Schema) -> pa.RecordBatch:
    """A batch read from chunks in ``layout`` as the logical columns ``schema``.

    ``batch`` holds the stored columns :func:`stored_columns` named for ``schema``'s names.
    """
    arrays = {name: batch.column(name) for name in batch.schema.names}
    if layout >= LAYOUT_FORMAT:
        if "fingerprint" in arrays:
            arrays["fingerprint"] = bytes_to_hex(arrays["fingerprint"])
        spliced = SPLICED.get(table)
        if spliced is not None and "raw" in schema.names and FLAG in arrays:
            arrays["raw"] = _unsplice(arrays["raw"], arrays[spliced], arrays[FLAG])
    columns = []
    for field in schema:
        column = arrays[field.name]
        columns.append(column if column.type.equals(field.type) else column.cast(field.type))
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def _unsplice(raw: pa.Array, text: pa.Array, flag: pa.Array) -> pa.Array:
    if len(raw) <= _SMALL_BATCH:
        # Each kernel call costs tens of microseconds whatever its length; a delta's chunk
        # often holds a few dozen rows.
        rows = zip(raw.to_pylist(), text.to_pylist(), flag.to_pylist(), strict=True)
        return pa.array(
            [whole.replace(MARKER, part, 1) if marked else whole for whole, part, marked in rows],
            pa.string(),
        )
    if not flag.null_count and pc.all(flag).as_py():  # the usual chunk: every row spliced
        parts = pc.split_pattern(raw, MARKER, max_splits=1)
        return pc.binary_join_element_wise(
            pc.list_element(parts, 0), text, pc.list_element(parts, 1), ""
        )
    marked = pc.fill_null(flag, False)
    if not pc.any(marked).as_py():
        return raw
    safe = pc.if_else(marked, raw, MARKER)  # rows stored whole are not split (nor joined)
    parts = pc.split_pattern(safe, MARKER, max_splits=1)
    filler = pc.if_else(marked, text, "")
    joined = pc.binary_join_element_wise(
        pc.list_element(parts, 0), filler, pc.list_element(parts, 1), ""
    )
    whole: pa.Array = pc.if_else(marked, joined, raw)
    return whole


def decoded_sql(table: str, layout: int, source: str) -> str:
    """A DuckDB SELECT over ``source`` (stored columns) giving the table's logical columns."""
    if layout < LAYOUT_FORMAT:
        return f"SELECT * FROM {source}"
    spliced = SPLICED.get(table)
    columns = []
    for name in schema_for(table).names:
        if name == "fingerprint":
            columns.append("lower(hex(fingerprint)) AS fingerprint")
        elif name == "raw" and spliced is not None:
            columns.append(
                f"CASE WHEN {FLAG} THEN replace(raw, chr({ord(MARKER)}), {spliced}) "
                "ELSE raw END AS raw"
            )
        else:
            columns.append(name)
    return f"SELECT {', '.join(columns)} FROM {source}"
