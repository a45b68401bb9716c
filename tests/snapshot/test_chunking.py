"""Content-defined chunks: bounds, determinism, and what a re-version writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

from labelvault.snapshot.chunking import ChunkPolicy, key_hash, row_sizes
from labelvault.snapshot.manifest import Manifest
from labelvault.snapshot.reader import SnapshotReader
from labelvault.snapshot.schema import schema_for
from labelvault.storage.base import ObjectStore
from labelvault.storage.memory import MemoryStore
from tests.snapshot import determinism_worker
from tests.snapshot.helpers import split, write_version
from tests.strategies import synthetic_project

ROOT = Path(__file__).resolve().parents[2]
SMALL_CHUNKS = 64 * 1024


def _users(count: int, *, tag: str = "") -> pa.Table:
    rows = [
        {
            "key": f"user-{i:06d}",
            "fingerprint": f"{(i * 7919 + len(tag)) % 2**64:064x}",
            "login": f"login-{i}{tag}",
            "raw": json.dumps({"id": i, "tag": tag}),
        }
        for i in range(count)
    ]
    return pa.Table.from_pylist(rows, schema=schema_for("users"))


def _chunk_rows(manifest: Manifest, table: str) -> list[int]:
    return [chunk.rows for chunk in manifest.table(table).chunks]


def _new_chunks(old: Manifest, new: Manifest, table: str) -> int:
    before = {chunk.key for chunk in old.table(table).chunks}
    return sum(chunk.key not in before for chunk in new.table(table).chunks)


# --- the policy ----------------------------------------------------------------------------


def test_policy_takes_rows_or_bytes_not_both() -> None:
    assert ChunkPolicy.of().unit == "bytes"
    assert ChunkPolicy.of(rows=100) == ChunkPolicy("rows", 100)
    with pytest.raises(ValueError, match="not both"):
        ChunkPolicy.of(rows=10, bytes=10)
    with pytest.raises(ValueError, match="positive"):
        ChunkPolicy.of(rows=0)


def test_key_hash_is_stable() -> None:
    # blake2b-64 of the UTF-8 key: the same in every process, unlike hash().
    assert key_hash("item-1") == key_hash("item-1")
    assert key_hash("item-1") != key_hash("item-2")
    assert key_hash("é") == int.from_bytes(
        __import__("hashlib").blake2b("é".encode(), digest_size=8).digest(), "big"
    )


def test_row_chunks_stay_within_min_and_max() -> None:
    manifest = write_version(
        MemoryStore(), [("users", b) for b in split(_users(5000), [333])], target_chunk_rows=64
    )
    rows = _chunk_rows(manifest, "users")
    assert sum(rows) == 5000
    assert len(rows) > 20  # content-defined boundaries actually fell
    assert all(16 <= count <= 256 for count in rows[:-1])
    assert 1 <= rows[-1] <= 256
    assert len(set(rows)) > 5  # sizes follow the content, not a fixed stride


def test_byte_chunks_are_bounded_by_size() -> None:
    table = _users(4000)
    sizes = row_sizes(table.to_batches()[0])
    target = 4096
    manifest = write_version(
        MemoryStore(), [("users", b) for b in split(table, [500])], target_chunk_bytes=target
    )
    start = 0
    for chunk in manifest.table("users").chunks:
        weight = sum(sizes[start : start + chunk.rows])
        assert weight <= 4 * target + max(sizes)
        start += chunk.rows
    assert start == 4000
    assert len(manifest.table("users").chunks) > 10


def test_boundaries_follow_keys_not_contents() -> None:
    base = write_version(
        MemoryStore(), [("users", b) for b in split(_users(3000), [100])], target_chunk_rows=50
    )
    other = write_version(
        MemoryStore(),
        [("users", b) for b in split(_users(3000, tag="-renamed"), [77])],
        target_chunk_rows=50,
    )
    ranges = [(c.min_key, c.max_key) for c in base.table("users").chunks]
    assert ranges == [(c.min_key, c.max_key) for c in other.table("users").chunks]
    assert base.content_hash != other.content_hash


# --- determinism ---------------------------------------------------------------------------


def test_same_rows_same_chunks_whatever_the_batch_sizes() -> None:
    results = [determinism_worker.chunk_keys(batch_rows, 600) for batch_rows in (3, 37, 5000)]
    assert results[0] == results[1] == results[2]
    assert len(results[0]["tables"]["annotations"]) > 3  # type: ignore[index]


def test_same_rows_same_chunks_in_other_processes() -> None:
    """Fresh interpreters with other hash seeds and batch sizes store the same chunk keys."""
    expected = determinism_worker.chunk_keys(100, 600)
    outputs = []
    for seed, batch_rows in (("1", 13), ("2", 900)):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run(
            [sys.executable, "-m", "tests.snapshot.determinism_worker", str(batch_rows), "600"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        outputs.append(json.loads(done.stdout))
    assert outputs[0] == expected
    assert outputs[1] == expected


# --- incremental versions ------------------------------------------------------------------

ITEMS = range(0, 20_000, 10)  # 2,000 items, 20,000 annotations; gaps leave room for inserts


@pytest.fixture(scope="module")
def base() -> tuple[ObjectStore, Manifest]:
    store = MemoryStore()
    manifest = write_version(
        store, synthetic_project(ITEMS, batch_rows=250), target_chunk_bytes=SMALL_CHUNKS
    )
    assert len(manifest.table("annotations").chunks) > 50
    return store, manifest


def test_unchanged_project_writes_no_data(base: tuple[ObjectStore, Manifest]) -> None:
    store, first = base
    again = write_version(
        store, synthetic_project(ITEMS, batch_rows=333), target_chunk_bytes=SMALL_CHUNKS
    )
    assert again.bytes_written == 0
    assert again.chunks_written == 0
    assert again.bytes_reused == first.data_bytes
    assert again.tables == first.tables
    assert again.content_hash == first.content_hash


def test_one_percent_change_writes_about_one_percent(base: tuple[ObjectStore, Manifest]) -> None:
    store, first = base
    ids = list(ITEMS)
    edited = set(ids[1000:1020])  # 1% of the items: their 200 figures change
    changed = write_version(
        store,
        synthetic_project(ITEMS, edited=edited, batch_rows=250),
        target_chunk_bytes=SMALL_CHUNKS,
    )
    assert changed.content_hash != first.content_hash
    assert 0 < changed.bytes_written <= 0.05 * changed.data_bytes
    assert changed.bytes_written + changed.bytes_reused == changed.data_bytes
    for table in ("project", "datasets", "items", "tags"):
        assert _new_chunks(first, changed, table) == 0


@pytest.mark.parametrize("position", [0, 999, 1998])
def test_inserted_item_touches_one_chunk_per_table(
    base: tuple[ObjectStore, Manifest], position: int
) -> None:
    store, first = base
    ids = list(ITEMS)
    new_id = ids[position] + 5
    with_item = sorted([*ids, new_id])
    inserted = write_version(
        store, synthetic_project(with_item, batch_rows=250), target_chunk_bytes=SMALL_CHUNKS
    )
    for table in ("items", "annotations", "tags"):
        assert _new_chunks(first, inserted, table) == 1, table
    for table in ("project", "datasets"):
        assert _new_chunks(first, inserted, table) == 0
    assert inserted.table("annotations").rows == first.table("annotations").rows + 10
    reader = SnapshotReader(store, inserted)
    keys = [k for b in reader.iter_batches("items", ["key"]) for k in b.column(0).to_pylist()]
    assert keys == sorted(keys)
    assert f"{new_id:012d}" in keys
