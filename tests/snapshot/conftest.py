"""Fixtures for the format tests: every backend a version can live on."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from labelvault.storage.base import ObjectStore
from labelvault.storage.local import LocalStore
from labelvault.storage.memory import MemoryStore


@pytest.fixture(params=["memory", "local"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ObjectStore]:
    """Every test that takes ``store`` runs on the in-memory store and on a local folder."""
    backend: ObjectStore = (
        MemoryStore() if request.param == "memory" else LocalStore(tmp_path / "store")
    )
    yield backend
    backend.close()


@pytest.fixture
def memory_store() -> MemoryStore:
    return MemoryStore()
