"""The conformance suite on the in-process store."""

from __future__ import annotations

import pytest

from labelvault.storage.memory import MemoryStore
from tests.storage.conformance import ObjectStoreConformance


class TestMemoryStore(ObjectStoreConformance):
    @pytest.fixture
    def store(self) -> MemoryStore:
        return MemoryStore("conformance")
