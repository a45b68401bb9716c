"""The backends the catalog suites run on, as fixtures, and store specs for child processes.

``store`` is an empty store on each backend (memory, a local folder, and S3 under
``-m s3``); ``shared_store`` leaves out the in-process memory store, for tests that need
another process to see the same objects. Child processes rebuild a store from a
:data:`StoreSpec` (plain values, picklable).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from labelvault.storage.base import ObjectStore
from labelvault.storage.local import LocalStore
from labelvault.storage.memory import MemoryStore

#: ``{"kind": "local", "root": ...}`` or ``{"kind": "s3", "bucket": ..., "prefix": ..., ...}``
StoreSpec = dict[str, Any]

ALL = ["memory", "local", pytest.param("s3", marks=pytest.mark.s3)]
SHARED = ["local", pytest.param("s3", marks=pytest.mark.s3)]


def open_spec(spec: StoreSpec) -> ObjectStore:
    """The store a spec describes (in this process)."""
    options = dict(spec)
    kind = options.pop("kind")
    if kind == "local":
        return LocalStore(options["root"])
    if kind == "s3":
        from labelvault.storage.s3 import S3Store

        bucket = options.pop("bucket")
        prefix = options.pop("prefix")
        return S3Store(bucket, prefix, **options)
    raise ValueError(f"unknown store kind {kind!r}")


def _make(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> tuple[ObjectStore, StoreSpec]:
    if kind == "memory":
        return MemoryStore("catalog-tests"), {"kind": "memory"}
    if kind == "local":
        root = tmp_path / "store"
        return LocalStore(root), {"kind": "local", "root": str(root)}
    server = request.getfixturevalue("s3_server")
    store = request.getfixturevalue("s3_store_factory")()
    spec: StoreSpec = {
        "kind": "s3",
        "bucket": store.bucket,
        "prefix": store.prefix,
        "endpoint_url": server.endpoint,
        "region": server.region,
        "access_key": server.access_key,
        "secret_key": server.secret_key,
        "addressing_style": "path",
    }
    return store, spec


@pytest.fixture(params=ALL)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ObjectStore]:
    """An empty store on each backend."""
    made, _ = _make(request.param, request, tmp_path)
    yield made
    made.close()


@pytest.fixture(params=SHARED)
def shared_store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[ObjectStore, StoreSpec]]:
    """An empty store that other processes can open too, with its spec."""
    made, spec = _make(request.param, request, tmp_path)
    yield made, spec
    made.close()
