"""Fixtures of the catalog suites: every test runs on each backend (see ``backends``)."""

from __future__ import annotations

from tests.catalog.backends import shared_store, store

__all__ = ["shared_store", "store"]
