"""Manifests: canonical and write-once storage, loading, format versions, content hash."""

from __future__ import annotations

import hashlib
import json

import pyarrow as pa
import pytest

from labelvault.errors import IntegrityError, SnapshotError, UnsupportedFormat
from labelvault.snapshot.manifest import (
    Manifest,
    content_hash,
    load_manifest,
    manifest_key,
    write_manifest,
)
from labelvault.snapshot.schema import FORMAT_VERSION, canonical_json, schema_for
from labelvault.storage.base import ObjectStore
from labelvault.storage.memory import MemoryStore
from tests.snapshot.helpers import PREFIX, write_version
from tests.strategies import synthetic_project


@pytest.fixture
def manifest(store: ObjectStore) -> Manifest:
    return write_version(store, synthetic_project(range(30)), target_chunk_rows=16)


def test_write_and_load(store: ObjectStore, manifest: Manifest) -> None:
    key = write_manifest(store, PREFIX, manifest)
    assert key == manifest.key
    assert key.startswith(f"{PREFIX}/manifests/")
    assert key.endswith(".json")
    assert store.get(key).data == manifest.to_json()
    assert load_manifest(store, key) == manifest
    assert write_manifest(store, PREFIX, manifest) == key  # idempotent retry


def test_stored_json_is_canonical(store: ObjectStore, manifest: Manifest) -> None:
    data = store.get(write_manifest(store, PREFIX, manifest)).data
    assert data == canonical_json(json.loads(data)).encode()
    assert manifest.key.endswith(f"{hashlib.sha256(data).hexdigest()}.json")
    fields = json.loads(data)
    assert fields["format_version"] == FORMAT_VERSION
    assert fields["source"] == {
        "platform": "supervisely",
        "instance": "app.example",
        "project_id": "42",
    }
    chunk = fields["tables"]["items"]["chunks"][0]
    assert set(chunk) == {"key", "rows", "bytes", "sha256", "min_key", "max_key"}


def test_referenced_keys(store: ObjectStore, manifest: Manifest) -> None:
    key = write_manifest(store, PREFIX, manifest)
    stored = {info.key for info in store.list(PREFIX)}
    assert manifest.referenced_keys() == stored
    assert key in manifest.referenced_keys()


def test_wrong_prefix_is_refused(manifest: Manifest) -> None:
    with pytest.raises(SnapshotError, match="belongs under"):
        write_manifest(MemoryStore(), "elsewhere/x/1", manifest)


def test_newer_format_version_is_unsupported(store: ObjectStore, manifest: Manifest) -> None:
    fields = json.loads(manifest.to_json())
    fields["format_version"] = FORMAT_VERSION + 1
    data = canonical_json(fields).encode()
    key = manifest_key(PREFIX, data)
    store.put(key, data)
    with pytest.raises(UnsupportedFormat, match=f"format version {FORMAT_VERSION + 1}.*newer"):
        load_manifest(store, key)


def test_format_version_below_the_oldest_is_unsupported(
    store: ObjectStore, manifest: Manifest
) -> None:
    fields = json.loads(manifest.to_json())
    fields["format_version"] = 0
    data = canonical_json(fields).encode()
    key = manifest_key(PREFIX, data)
    store.put(key, data)
    with pytest.raises(UnsupportedFormat, match="format version 0 is not one this build can read"):
        load_manifest(store, key)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"format_version": "1"}', "format_version is '1'"),
        (b'{"format_version": 1, "prefix": "p"}', "not a valid manifest: source"),
    ],
)
def test_corrupt_manifest_json(store: ObjectStore, data: bytes, message: str) -> None:
    key = manifest_key(PREFIX, data)
    store.put(key, data)
    with pytest.raises(IntegrityError, match=message) as raised:
        load_manifest(store, key)
    assert key in str(raised.value)
    assert raised.value.key == key


def test_manifest_bytes_that_do_not_match_their_key(store: ObjectStore, manifest: Manifest) -> None:
    key = write_manifest(store, PREFIX, manifest)
    store.put(key, manifest.to_json().replace(b'"rows":30', b'"rows":31'))
    with pytest.raises(IntegrityError, match=f"manifest {key} is corrupt: its sha256"):
        load_manifest(store, key)


def test_tampered_content_hash_is_detected(store: ObjectStore, manifest: Manifest) -> None:
    tampered = manifest.model_copy(update={"content_hash": "f" * 64})
    store.put("elsewhere.json", tampered.to_json())  # a name without a hash: only the body
    with pytest.raises(IntegrityError, match="content_hash"):
        load_manifest(store, "elsewhere.json")


def test_missing_manifest(store: ObjectStore) -> None:
    with pytest.raises(IntegrityError, match="is missing"):
        load_manifest(store, f"{PREFIX}/manifests/{'0' * 64}.json")


def test_model_copy_recomputes_the_key(manifest: Manifest) -> None:
    first = manifest.key
    other = manifest.model_copy(update={"bytes_written": manifest.bytes_written + 1})
    assert other.key != first


# --- content hash --------------------------------------------------------------------------


def _tags(keys: list[str], values: list[str]) -> pa.RecordBatch:
    rows = [
        {
            "key": key,
            "fingerprint": hashlib.sha256(value.encode()).hexdigest(),
            "owner_type": "item",
            "owner_key": key,
            "raw": json.dumps({"id": key}),
        }
        for key, value in zip(keys, values, strict=True)
    ]
    return pa.RecordBatch.from_pylist(rows, schema=schema_for("tags"))


def test_content_hash_ignores_platform_ids_and_order() -> None:
    store = MemoryStore()
    a = write_version(store, [("tags", _tags(["1", "2", "3"], ["x", "y", "y"]))])
    # Another project on another server: other ids (keys, raw), rows in another order.
    b = write_version(
        store, [("tags", _tags(["a7", "b9", "c0"], ["y", "x", "y"]))], prefix="other/p/9"
    )
    assert a.content_hash == b.content_hash
    assert a.chunk_keys() != b.chunk_keys()


def test_content_hash_sees_multiplicity_and_values() -> None:
    store = MemoryStore()
    base = write_version(store, [("tags", _tags(["1", "2"], ["x", "y"]))]).content_hash
    duplicated = write_version(store, [("tags", _tags(["1", "2", "3"], ["x", "y", "y"]))])
    changed = write_version(store, [("tags", _tags(["1", "2"], ["x", "z"]))])
    users = pa.RecordBatch.from_pylist(  # the same rows, in another table
        _tags(["1", "2"], ["x", "y"]).select(["key", "fingerprint", "raw"]).to_pylist(),
        schema=schema_for("users"),
    )
    moved = write_version(store, [("users", users)])
    assert len({base, duplicated.content_hash, changed.content_hash, moved.content_hash}) == 4


def test_content_hash_is_a_function_of_the_tables(manifest: Manifest) -> None:
    assert manifest.content_hash == content_hash(manifest.tables)
