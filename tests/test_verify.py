"""``verify_project``: which versions it checks, what it reports, and that it is plain JSON."""

from __future__ import annotations

import json

import pytest

from labelvault.catalog import Catalog, lease_key, meta_key
from labelvault.errors import VersionNotFound
from labelvault.storage.base import ObjectStore
from labelvault.storage.memory import MemoryStore
from labelvault.verify import verify_project
from tests.catalog.helpers import add_version, new_project
from tests.test_tamper import Captured, captured, store

__all__ = ["captured", "store"]  # fixtures, imported for these tests


def test_one_version_by_number_or_id(captured: Captured) -> None:
    by_number = captured.vault.verify(captured.project, 2, deep=True)
    assert by_number.versions_checked == (2,)
    by_id = verify_project(captured.store, captured.project, captured.v1.id)
    assert by_id.versions_checked == (1,)
    with pytest.raises(VersionNotFound, match="no version 9"):
        captured.vault.verify(captured.project, 9)
    with pytest.raises(VersionNotFound):
        captured.vault.verify(captured.project, "no-such-id")


def test_every_damaged_object_is_reported_not_just_the_first(captured: Captured) -> None:
    captured.store.delete(captured.v1.manifest_key)
    captured.store.put(meta_key(captured.project, 2), b"\x00garbage")
    captured.store.put(lease_key(captured.project), b"[]")
    report = captured.vault.verify(captured.project, deep=True)
    kinds = {(item.kind, item.key) for item in report.damage}
    assert kinds == {
        ("manifest", captured.v1.manifest_key),
        ("metadata", meta_key(captured.project, 2)),
        ("lease", lease_key(captured.project)),
    }
    assert report.damaged_versions == (1, 2)
    assert report.lease == "an unreadable lease"
    summary = json.loads(json.dumps(report.summary()))
    assert summary["ok"] is False
    assert summary["damaged_versions"] == [1, 2]
    assert {item["kind"] for item in summary["damage"]} == {"manifest", "metadata", "lease"}


def test_a_missing_chunk_names_every_version_that_uses_it(captured: Captured) -> None:
    shared = sorted(
        captured.vault.manifest(captured.v1).chunk_keys()
        & captured.vault.manifest(captured.v2).chunk_keys()
    )[0]
    captured.store.delete(shared)
    [damage] = captured.vault.verify(captured.project, deep=True).damage
    assert (damage.key, damage.problem, damage.versions) == (shared, "missing", (1, 2))


def test_an_empty_project_verifies_clean() -> None:
    report = verify_project(MemoryStore(), new_project())
    assert report.ok
    assert report.versions_checked == ()
    assert report.summary()["lease"] is None


def test_a_held_lease_is_described(store: ObjectStore) -> None:
    catalog, project = Catalog(store), new_project()
    add_version(catalog, project, "a")
    catalog.reserve(project, holder="nightly capture")
    report = verify_project(catalog, project)
    assert report.lease is not None
    assert "nightly capture" in report.lease
    assert "alive on this host" in report.lease
    # The helpers commit records without writing manifests: verify says so.
    assert [(d.kind, d.versions) for d in report.damage] == [("manifest", (1,))]
    assert "is missing" in report.damage[0].problem
