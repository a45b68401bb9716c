"""SQL over a version, on a local folder and in memory, verified or in place."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from labelvault.errors import IntegrityError
from labelvault.query import connect, query, query_reader, table_dataset
from labelvault.snapshot.manifest import Manifest
from labelvault.snapshot.reader import SnapshotReader
from labelvault.snapshot.schema import TABLES
from labelvault.storage.base import ObjectStore
from labelvault.storage.local import LocalStore
from labelvault.storage.memory import MemoryStore
from tests.snapshot.helpers import write_version
from tests.strategies import synthetic_project


@pytest.fixture(params=["memory", "local"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ObjectStore]:
    backend: ObjectStore = (
        MemoryStore() if request.param == "memory" else LocalStore(tmp_path / "store")
    )
    yield backend
    backend.close()


@pytest.fixture
def manifest(store: ObjectStore) -> Manifest:
    pages = synthetic_project(range(400), annotations_per_item=7, batch_rows=100)
    return write_version(store, pages, target_chunk_rows=300)


def _column(store: ObjectStore, manifest: Manifest, table: str, column: str) -> list[object]:
    reader = SnapshotReader(store, manifest)
    return [
        v for batch in reader.iter_batches(table, [column]) for v in batch.column(0).to_pylist()
    ]


@pytest.mark.parametrize("verify", [True, False])
def test_counts_match_the_manifest(store: ObjectStore, manifest: Manifest, verify: bool) -> None:
    sql = " UNION ALL ".join(f"SELECT '{t}' AS t, count(*) AS n FROM {t}" for t in TABLES)
    result = query(store, manifest, sql, verify=verify)
    counts = dict(zip(*result.to_pydict().values(), strict=True))
    assert counts == {**dict.fromkeys(TABLES, 0), **manifest.row_counts}  # absent: empty


@pytest.mark.parametrize("verify", [True, False])
def test_group_by_matches_a_scan(store: ObjectStore, manifest: Manifest, verify: bool) -> None:
    result = query(
        store,
        manifest,
        "SELECT class_name, count(*) AS n FROM annotations GROUP BY class_name ORDER BY class_name",
        verify=verify,
    )
    expected = Counter(_column(store, manifest, "annotations", "class_name"))
    assert result.to_pylist() == [{"class_name": k, "n": v} for k, v in sorted(expected.items())]


def test_joins_and_filters(store: ObjectStore, manifest: Manifest) -> None:
    result = query(
        store,
        manifest,
        """
        SELECT i.name, count(a.key) AS figures
        FROM items i JOIN annotations a ON a.item_key = i.key
        WHERE i.key < '000000000010'
        GROUP BY i.name ORDER BY i.name
        """,
    )
    assert result.to_pylist() == [{"name": f"img_{i:09d}.jpg", "figures": 7} for i in range(10)]
    self_join = query(store, manifest, "SELECT count(*) AS n FROM items a JOIN items b USING (key)")
    assert self_join.column("n")[0].as_py() == 400


def test_streaming_reader(store: ObjectStore, manifest: Manifest) -> None:
    reader = query_reader(
        store, manifest, "SELECT key, geometry FROM annotations ORDER BY key", batch_rows=500
    )
    assert isinstance(reader, pa.RecordBatchReader)
    sizes, keys = [], []
    for batch in reader:
        sizes.append(batch.num_rows)
        keys += batch.column("key").to_pylist()
    assert max(sizes) <= 500
    assert len(sizes) >= 6
    assert keys == _column(store, manifest, "annotations", "key")


def test_session_runs_several_queries(store: ObjectStore, manifest: Manifest) -> None:
    with connect(store, manifest) as session:
        assert session.execute("SELECT count(*) AS n FROM tags").column(0)[0].as_py() == 400
        empty = session.execute("SELECT * FROM users")
        assert empty.num_rows == 0
        assert "login" in empty.column_names
        streamed = session.stream("SELECT key FROM items").read_all()
        assert streamed.num_rows == 400


def test_dataset_has_the_table_schema(store: ObjectStore, manifest: Manifest) -> None:
    dataset = table_dataset(store, manifest, "items")
    assert dataset.count_rows() == 400
    assert dataset.schema.field("key").type == pa.string()


def test_verify_names_a_corrupt_chunk(store: ObjectStore, manifest: Manifest) -> None:
    victim = manifest.table("annotations").chunks[3]
    data = store.get(victim.key).data
    store.put(victim.key, data[:-1] + bytes([data[-1] ^ 0xFF]))
    assert query(store, manifest, "SELECT count(*) AS n FROM items").column(0)[0].as_py() == 400
    with pytest.raises(IntegrityError, match=f"chunk {victim.key} is corrupt"):
        query(store, manifest, "SELECT count(*) FROM annotations")
    with pytest.raises(IntegrityError, match=victim.key):
        query_reader(store, manifest, "SELECT key FROM annotations", batch_rows=10).read_all()


def test_verify_names_a_missing_chunk(store: ObjectStore, manifest: Manifest) -> None:
    victim = manifest.table("tags").chunks[0]
    store.delete(victim.key)
    with pytest.raises(IntegrityError, match=f"chunk {victim.key} is missing"):
        query(store, manifest, "SELECT max(value) FROM tags")


def test_in_place_reads_the_files_directly(tmp_path: Path) -> None:
    """verify=False on a local folder reads the Parquet files in place, without checksums."""
    store = LocalStore(tmp_path / "store")
    manifest = write_version(store, synthetic_project(range(50)), target_chunk_rows=100)
    assert store.arrow_filesystem() is not None
    victim = manifest.table("items").chunks[0]
    store.put(victim.key, store.get(victim.key).data + b"trailing junk")  # footer moved
    with pytest.raises(IntegrityError, match=victim.key):
        query(store, manifest, "SELECT count(*) FROM items")
    with pytest.raises(Exception, match=r"[Pp]arquet|magic") as raised:
        query(store, manifest, "SELECT count(*) FROM items", verify=False)
    assert not isinstance(raised.value, IntegrityError)


_DUCKDB_PROBE = """
import sys
import labelvault.cli, labelvault.vault, labelvault.restore, labelvault.capture
from labelvault.platforms import PLATFORMS
before = "duckdb" in sys.modules
from labelvault.query import query
print(before, "duckdb" in sys.modules, callable(query))
"""


def test_duckdb_loads_with_the_first_query_and_not_for_a_capture_or_restore() -> None:
    """DuckDB takes tens of MB of a process's memory; capture and restore never query."""
    done = subprocess.run(
        [sys.executable, "-c", _DUCKDB_PROBE], capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == ["False", "True", "True"]
