"""Content-defined chunk boundaries and the deterministic Parquet encoding of a chunk.

A table is a stream of rows in strictly increasing key order. The stream is cut into chunks
where a hash of a row's *key* says so, so boundaries move with the rows and not with positions:
inserting or changing a row changes only the chunk that holds it (in the common case), and an
unchanged table is cut into the very same chunks, whatever the batch sizes it arrived in.

The rule, for a row with key ``k`` and weight ``w`` (1 per row, or its size in bytes), with
``h = blake2b-64(k)`` and a target chunk weight ``T``: a chunk ends after the row when

- the chunk so far weighs at least ``T / 4`` (no tiny chunks) **and** ``h * T < w * 2**64``,
  i.e. with probability ``w / T`` (for rows and a power-of-two ``T`` this is "the top
  ``log2 T`` bits of ``h`` are zero": a mask on the key hash); or
- the chunk weighs ``4 T`` or more, or its rows take :data:`MAX_CHUNK_BYTES` (a hard bound on
  chunk size and so on the writer's memory).

Chunks are Parquet files with fixed writer options (zstd, dictionary encoding for short
repeated values, delta encodings for keys, long JSON texts and timestamps, the key declared as
the sort column, with its statistics) and no timestamps, so the same rows give the same bytes
in any process. The footer holds no Arrow schema and no statistics of other columns (readers
take the schema from :mod:`.schema`, and chunks are found by key): it would be most of a small
delta chunk's bytes. The bytes do depend on the pyarrow version: after an upgrade that changes
the encoding, the first new version rewrites its chunks once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Final, Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from labelvault.errors import SchemaMismatch
from labelvault.snapshot.schema import schema_for

__all__ = [
    "DEFAULT_ROW_GROUP_ROWS",
    "DEFAULT_TARGET_CHUNK_BYTES",
    "MAX_CHUNK_BYTES",
    "ChunkPolicy",
    "conform_batch",
    "encode_chunk",
    "key_hash",
    "row_sizes",
]

#: Default target chunk size: rows' uncompressed bytes (a chunk file is several times smaller).
DEFAULT_TARGET_CHUNK_BYTES: Final = 2 * 1024 * 1024
#: Hard bound on a chunk's uncompressed row bytes, whatever the policy.
MAX_CHUNK_BYTES: Final = 64 * 1024 * 1024
#: Default Parquet row group size inside a chunk.
DEFAULT_ROW_GROUP_ROWS: Final = 64 * 1024

_FIXED_WIDTH_BYTES: Final = 8
_NO_DICTIONARY: Final = frozenset({"key", "fingerprint", "raw", "geometry"})
#: Encodings that beat dictionary + RLE (measured in ``benchmarks/format.py``'s data): keys
#: share long prefixes with the key before; long JSON texts compress better with their lengths
#: apart; timestamps grow by small steps.
_ENCODINGS: Final = {
    "key": "DELTA_BYTE_ARRAY",
    "raw": "DELTA_LENGTH_BYTE_ARRAY",
    "geometry": "DELTA_LENGTH_BYTE_ARRAY",
}
_TIMESTAMP_ENCODING: Final = "DELTA_BINARY_PACKED"
_ZSTD_LEVEL: Final = 3
_HEX64: Final = "^[0-9a-f]{64}$"


def key_hash(key: str) -> int:
    """A stable 64-bit hash of a row key (blake2b), the same in every process."""
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big")


@dataclass(frozen=True)
class ChunkPolicy:
    """Where chunk boundaries fall: a target weight, in rows or in uncompressed bytes."""

    unit: Literal["rows", "bytes"]
    target: int
    max_bytes: int = MAX_CHUNK_BYTES

    def __post_init__(self) -> None:
        if self.target < 1:
            raise ValueError(f"target chunk size must be positive, got {self.target}")
        if self.max_bytes < 1:
            raise ValueError(f"max chunk bytes must be positive, got {self.max_bytes}")

    @classmethod
    def of(cls, *, rows: int | None = None, bytes: int | None = None) -> ChunkPolicy:
        """A policy from a target in rows or in bytes (bytes by default)."""
        if rows is not None and bytes is not None:
            raise ValueError("give target_chunk_rows or target_chunk_bytes, not both")
        if rows is not None:
            return cls("rows", rows)
        return cls("bytes", DEFAULT_TARGET_CHUNK_BYTES if bytes is None else bytes)

    @property
    def min_weight(self) -> int:
        """No content-defined boundary before a chunk weighs this much."""
        return max(1, self.target // 4)

    @property
    def max_weight(self) -> int:
        """A boundary is forced once a chunk weighs this much."""
        return self.target * 4

    def cut(
        self, keys: list[str], sizes: list[int], weight: int, size: int
    ) -> tuple[list[int], int, int]:
        """Find the boundaries in a run of rows.

        ``weight`` and ``size`` are what the open chunk holds before these rows. Returns the
        (exclusive) row indices where chunks end, and the open chunk's weight and size after
        the last row.
        """
        ends: list[int] = []
        by_rows = self.unit == "rows"
        target, low, high, cap = self.target, self.min_weight, self.max_weight, self.max_bytes
        for index, key in enumerate(keys):
            row_size = sizes[index]
            row_weight = 1 if by_rows else row_size
            weight += row_weight
            size += row_size
            if (
                weight >= high
                or size >= cap
                or (weight >= low and key_hash(key) * target < row_weight << 64)
            ):
                ends.append(index + 1)
                weight = size = 0
        return ends, weight, size


def row_sizes(batch: pa.RecordBatch) -> list[int]:
    """Each row's uncompressed size: its strings' UTF-8 bytes plus 8 per other column."""
    total = pa.array([0] * batch.num_rows, pa.int64())
    fixed = 0
    for column in batch.columns:
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            total = pc.add(total, pc.fill_null(pc.binary_length(column), 0))
        else:
            fixed += _FIXED_WIDTH_BYTES
    sizes: list[int] = pc.add(total, fixed).to_pylist()
    return sizes


def conform_batch(table: str, batch: pa.RecordBatch) -> pa.RecordBatch:
    """``batch`` in ``table``'s exact schema: columns reordered and cast where lossless.

    Raises :class:`SchemaMismatch` naming the table and column when a column is missing,
    unexpected, of a type that cannot be converted, or null where the schema forbids it.
    """
    try:
        schema = schema_for(table)
    except KeyError as exc:
        raise SchemaMismatch(str(exc.args[0])) from None
    names = batch.schema.names
    if len(set(names)) != len(names):
        duplicated = sorted({name for name in names if names.count(name) > 1})
        raise SchemaMismatch(f"table {table!r}: duplicated columns {duplicated}")
    missing = [name for name in schema.names if name not in names]
    if missing:
        raise SchemaMismatch(f"table {table!r}: missing columns {missing}")
    extra = [name for name in names if name not in schema.names]
    if extra:
        raise SchemaMismatch(
            f"table {table!r}: unexpected columns {extra}; the table's columns are {schema.names}"
        )
    arrays = []
    for field in schema:
        column = batch.column(field.name)
        if not column.type.equals(field.type):
            try:
                column = pc.cast(column, field.type, safe=True)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
                raise SchemaMismatch(
                    f"table {table!r}, column {field.name!r}: cannot convert {column.type} to "
                    f"{field.type} ({exc})"
                ) from None
        if not field.nullable and column.null_count:
            raise SchemaMismatch(
                f"table {table!r}, column {field.name!r}: {column.null_count} null value(s) in "
                "a column that does not allow nulls"
            )
        arrays.append(column)
    conformed = pa.RecordBatch.from_arrays(arrays, schema=schema)
    bad = pc.invert(pc.match_substring_regex(conformed.column("fingerprint"), _HEX64))
    if pc.any(bad).as_py():
        index = pc.index(bad, True).as_py()
        raise SchemaMismatch(
            f"table {table!r}, column 'fingerprint': row with key "
            f"{conformed.column('key')[index].as_py()!r} has "
            f"{conformed.column('fingerprint')[index].as_py()!r}, not 64 lowercase hex digits"
        )
    return conformed


def encode_chunk(table: pa.Table, *, row_group_rows: int = DEFAULT_ROW_GROUP_ROWS) -> bytes:
    """Deterministic Parquet bytes for ``table`` (one contiguous array per column)."""
    table = table.combine_chunks()
    encodings = {name: _ENCODINGS[name] for name in table.schema.names if name in _ENCODINGS}
    for field in table.schema:
        if pa.types.is_timestamp(field.type):
            encodings[field.name] = _TIMESTAMP_ENCODING
    dictionary = [
        name for name in table.schema.names if name not in _NO_DICTIONARY and name not in encodings
    ]
    sink = pa.BufferOutputStream()
    pq.write_table(
        table,
        sink,
        row_group_size=row_group_rows,
        version="2.6",
        compression="zstd",
        compression_level=_ZSTD_LEVEL,
        use_dictionary=dictionary,
        column_encoding=encodings,
        write_statistics=["key"],
        store_schema=False,
        sorting_columns=[pq.SortingColumn(0)],
    )
    data: bytes = sink.getvalue().to_pybytes()
    return data
