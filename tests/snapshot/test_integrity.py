"""Every read verifies: corrupt, truncated, missing or mislabelled chunks are named errors."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from labelvault.errors import IntegrityError, UnsupportedFormat
from labelvault.snapshot.manifest import ChunkRef, Manifest, TableManifest
from labelvault.snapshot.reader import SnapshotReader
from labelvault.storage.base import ObjectStore
from tests.snapshot.helpers import write_version
from tests.strategies import synthetic_project


@pytest.fixture
def manifest(store: ObjectStore) -> Manifest:
    return write_version(store, synthetic_project(range(150), batch_rows=64), target_chunk_rows=32)


def _victim(manifest: Manifest) -> ChunkRef:
    chunks = manifest.table("annotations").chunks
    assert len(chunks) > 3
    return chunks[len(chunks) // 2]


def _read_all(store: ObjectStore, manifest: Manifest) -> int:
    reader = SnapshotReader(store, manifest)
    return sum(b.num_rows for b in reader.iter_batches("annotations"))


def _flip_byte(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0x01]) + data[middle + 1 :]


CORRUPTIONS: dict[str, tuple[Callable[[bytes], bytes], str]] = {
    "flipped byte": (_flip_byte, "is corrupt: sha256 [0-9a-f]{64}, the manifest says"),
    "truncated": (lambda data: data[:-100], r"is corrupt: \d+ bytes, the manifest says"),
    "appended": (lambda data: data + b"\0", r"is corrupt: \d+ bytes, the manifest says"),
}


@pytest.mark.parametrize("corruption", CORRUPTIONS)
def test_corrupt_chunk_is_named(store: ObjectStore, manifest: Manifest, corruption: str) -> None:
    assert _read_all(store, manifest) == 1500
    victim = _victim(manifest)
    change, message = CORRUPTIONS[corruption]
    store.put(victim.key, change(store.get(victim.key).data))

    with pytest.raises(IntegrityError, match=f"chunk {victim.key} {message}") as raised:
        _read_all(store, manifest)
    assert raised.value.key == victim.key
    with pytest.raises(IntegrityError, match=victim.key):
        SnapshotReader(store, manifest).verify()


def test_missing_chunk_is_named(store: ObjectStore, manifest: Manifest) -> None:
    victim = _victim(manifest)
    store.delete(victim.key)
    with pytest.raises(IntegrityError, match=f"chunk {victim.key} is missing"):
        _read_all(store, manifest)
    with pytest.raises(IntegrityError, match=f"chunk {victim.key} is missing"):
        SnapshotReader(store, manifest).verify(["annotations"])


def test_manifest_pointing_at_a_wrong_hash(store: ObjectStore, manifest: Manifest) -> None:
    victim = _victim(manifest)
    wrong = victim.model_copy(update={"sha256": "0" * 64})
    table = manifest.table("annotations")
    chunks = tuple(wrong if c == victim else c for c in table.chunks)
    bad = manifest.model_copy(
        update={
            "tables": {
                **manifest.tables,
                "annotations": TableManifest(**{**table.model_dump(), "chunks": chunks}),
            }
        }
    )
    with pytest.raises(IntegrityError, match=f"chunk {victim.key} .*manifest says 0{{64}}"):
        _read_all(store, bad)


def test_manifest_pointing_at_another_tables_chunk(store: ObjectStore, manifest: Manifest) -> None:
    """A chunk that verifies but holds other rows is still refused, naming the chunk."""
    stranger = manifest.table("items").chunks[0]
    table = manifest.table("annotations")
    swapped = TableManifest(**{**table.model_dump(), "chunks": (stranger, *table.chunks[1:])})
    bad = manifest.model_copy(update={"tables": {**manifest.tables, "annotations": swapped}})
    with pytest.raises(IntegrityError, match=stranger.key):
        _read_all(store, bad)


def test_row_count_mismatch_is_named(store: ObjectStore, manifest: Manifest) -> None:
    victim = _victim(manifest)
    table = manifest.table("annotations")
    lying = victim.model_copy(update={"rows": victim.rows + 1})
    chunks = tuple(lying if c == victim else c for c in table.chunks)
    bad = manifest.model_copy(
        update={
            "tables": {
                **manifest.tables,
                "annotations": table.model_copy(update={"chunks": chunks}),
            }
        }
    )
    with pytest.raises(IntegrityError, match=f"chunk {victim.key} holds {victim.rows} rows"):
        _read_all(store, bad)


def test_verify_counts_every_byte(store: ObjectStore, manifest: Manifest) -> None:
    assert SnapshotReader(store, manifest).verify() == manifest.data_bytes


def test_reader_refuses_a_newer_format(store: ObjectStore, manifest: Manifest) -> None:
    newer = manifest.model_copy(update={"format_version": manifest.format_version + 1})
    with pytest.raises(UnsupportedFormat):
        SnapshotReader(store, newer)
