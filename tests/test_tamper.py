"""Tampering with a store's versions, on every backend: each case is detected or contained.

Every test starts from two captured versions of one project (v1, then an edit, then v2),
damages one object, and checks that (a) the damage is named where the version is read, and in
``verify``; (b) the other version is still listed and read; (c) a new capture still commits.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from labelvault.catalog import Catalog, version_key
from labelvault.errors import CorruptRecord, IntegrityError
from labelvault.models import ProjectRef, VersionInfo
from labelvault.platforms.supervisely import SuperviselyPlatform
from labelvault.retention import RetentionPolicy
from labelvault.snapshot.manifest import write_manifest
from labelvault.storage.base import ObjectStore
from labelvault.vault import Vault
from tests.catalog.backends import store
from tests.fakes.supervisely import FakeSupervisely, generate_rich_project

__all__ = ["store"]  # the backend fixture, imported for these tests


@dataclass
class Captured:
    vault: Vault
    store: ObjectStore
    fake: FakeSupervisely
    platform: SuperviselyPlatform
    project_id: int
    project: ProjectRef
    v1: VersionInfo
    v2: VersionInfo

    def edit(self) -> None:
        """Add a box to the project, so that the next capture makes a new version."""
        meta = self.fake.metas[self.project_id]
        [box] = [c for c in meta["classes"] if c["shape"] == "rectangle"]
        image = next(i for i in self.fake.images.values() if i["projectId"] == self.project_id)
        geometry = {"points": {"exterior": [[1.5, 2.5], [30.25, 40.75]], "interior": []}}
        self.fake.create_figure(image["id"], box["id"], "rectangle", geometry)
        self.fake.touch_project(self.project_id)

    def capture(self) -> VersionInfo:
        """Edit, capture, and return the new version (it must be new)."""
        self.edit()
        result = self.vault.capture(self.platform, str(self.project_id))
        assert result.created, result.reason
        return result.version

    def record(self, number: int) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.store.get(version_key(self.project, number)).data)
        return loaded

    def rewrite(self, number: int, **fields: Any) -> None:
        raw = self.record(number)
        raw.update(fields)
        self.store.put(version_key(self.project, number), json.dumps(raw).encode())

    def readable(self, version: VersionInfo) -> int:
        """Read every row of a version (verifying each chunk); the number of items."""
        reader = self.vault.reader(self.project, version.number)
        return sum(batch.num_rows for batch in reader.iter_batches("items"))

    def chunk_only_in(self, version: VersionInfo, other: VersionInfo) -> str:
        mine = self.vault.manifest(version).chunk_keys()
        theirs = self.vault.manifest(other).chunk_keys()
        return sorted(mine - theirs)[0]


@pytest.fixture
def captured(store: ObjectStore) -> Captured:
    fake = FakeSupervisely(seed=5)
    rich = generate_rich_project(fake, images_per_dataset=2)
    platform = SuperviselyPlatform("http://sly.test", fake.token, transport=fake.transport())
    vault = Vault(store, catalog=Catalog(store))
    made = Captured(vault, store, fake, platform, rich.project_id, None, None, None)  # type: ignore[arg-type]
    first = vault.capture(platform, str(rich.project_id))
    made.project, made.v1 = first.version.project, first.version
    made.v2 = made.capture()
    return made


def assert_contained(captured: Captured, damaged: int) -> None:
    """The other version is listed and read, and a new capture commits and reads."""
    healthy = captured.v2 if damaged == 1 else captured.v1
    listed = captured.vault.catalog.list(captured.project)
    assert [v.number for v in listed] == [healthy.number]
    assert [d.number for d in listed.damaged] == [damaged]
    assert captured.readable(healthy) > 0
    third = captured.capture()
    assert third.number == 3
    assert captured.readable(third) > 0
    report = captured.vault.verify(captured.project)
    assert report.damaged_versions == (damaged,)


def test_a_fresh_capture_verifies_clean(captured: Captured) -> None:
    report = captured.vault.verify(captured.project, deep=True)
    assert report.ok, report.summary()
    assert report.versions_checked == (1, 2)
    assert report.chunks_checked > 0
    assert captured.record(2)["manifest_sha256"] in captured.v2.manifest_key
    assert captured.vault.manifest(captured.v2).version_number == 2


def test_a_record_repointed_at_another_versions_manifest(captured: Captured) -> None:
    v1 = captured.record(1)
    fields = ("manifest_key", "manifest_sha256", "content_hash", "stats")
    captured.rewrite(2, **{name: v1[name] for name in fields})
    with pytest.raises(IntegrityError, match="written for version 1") as caught:
        captured.vault.catalog.get(captured.project, 2)
    assert v1["manifest_key"] in caught.value.message
    assert version_key(captured.project, 2) in caught.value.message
    with pytest.raises(IntegrityError, match="written for version 1"):
        captured.vault.diff(captured.project, 1, 2)  # never "same content"
    with pytest.raises(IntegrityError):
        captured.vault.catalog.latest(captured.project)
    assert_contained(captured, damaged=2)


def test_a_record_repointed_by_its_key_only(captured: Captured) -> None:
    captured.rewrite(2, manifest_key=captured.v1.manifest_key)
    with pytest.raises(IntegrityError, match="names a manifest with sha256"):
        captured.vault.version(captured.project, 2)
    assert_contained(captured, damaged=2)


def test_a_forged_content_hash(captured: Captured) -> None:
    captured.rewrite(1, content_hash="f" * 64)
    with pytest.raises(IntegrityError, match=f"content hash {'f' * 64}") as caught:
        captured.vault.version(captured.project, 1)
    assert captured.v1.manifest_key in caught.value.message
    with pytest.raises(IntegrityError):
        captured.vault.query(captured.project, "SELECT count(*) FROM items", 1)
    assert_contained(captured, damaged=1)


def test_a_forged_latest_hash_cannot_make_a_capture_look_unchanged(captured: Captured) -> None:
    captured.rewrite(2, content_hash="0" * 64)
    assert captured.capture().number == 3  # committed, not "no change" against a forgery


def test_a_deleted_manifest(captured: Captured) -> None:
    captured.store.delete(captured.v1.manifest_key)
    with pytest.raises(IntegrityError, match=re.escape(f"{captured.v1.manifest_key} is missing")):
        captured.vault.reader(captured.project, 1)
    report = captured.vault.verify(captured.project)
    [damage] = report.damage
    assert (damage.kind, damage.key, damage.versions) == (
        "manifest",
        captured.v1.manifest_key,
        (1,),
    )
    before = {info.key for info in captured.store.list(f"{captured.project.prefix}/chunks/")}
    expired = captured.vault.expire(
        captured.project, RetentionPolicy(keep_last=1, keep_tagged=False), dry_run=False
    )
    assert expired.damaged
    assert "version 1" in expired.damaged[0]
    assert expired.versions_deleted == ()  # the damaged version is kept, nothing else expires
    after = {info.key for info in captured.store.list(f"{captured.project.prefix}/chunks/")}
    assert after == before, "no chunk a damaged version might use is deleted"
    assert_contained(captured, damaged=1)


def test_a_corrupt_record(captured: Captured) -> None:
    key = version_key(captured.project, 1)
    captured.store.put(key, b'{"schema_version": 2, "number": ')
    with pytest.raises(CorruptRecord, match=re.escape(key)):
        captured.vault.version(captured.project, 1)
    assert captured.vault.catalog.get(captured.project, captured.v2.id).number == 2
    [damage] = captured.vault.verify(captured.project).damage
    assert (damage.kind, damage.key) == ("record", key)
    assert_contained(captured, damaged=1)


def test_retention_still_expires_what_it_safely_can(captured: Captured) -> None:
    v3 = captured.capture()
    captured.store.put(version_key(captured.project, 2), b"garbage")
    data = f"{captured.project.prefix}/chunks/"
    before = {info.key for info in captured.store.list(data)}
    report = captured.vault.expire(
        captured.project,
        RetentionPolicy(keep_last=1, keep_tagged=False),
        dry_run=False,
        now=v3.created_at + timedelta(days=1),
    )
    assert report.versions_deleted == (1,)  # healthy and expired: gone
    assert report.held.count > 0
    assert report.freed.count == 0
    assert {info.key for info in captured.store.list(data)} == before
    listed = captured.vault.catalog.list(captured.project)
    assert [v.number for v in listed] == [3]
    assert [d.number for d in listed.damaged] == [2]
    assert captured.readable(v3) > 0


@pytest.mark.parametrize("damage", ["truncated", "bit-flipped"])
def test_a_damaged_chunk(captured: Captured, damage: str) -> None:
    key = captured.chunk_only_in(captured.v1, captured.v2)
    data = captured.store.get(key).data
    if damage == "truncated":
        broken = data[: len(data) // 2]
    else:
        middle = len(data) // 2
        broken = data[:middle] + bytes([data[middle] ^ 0x01]) + data[middle + 1 :]
    captured.store.put(key, broken)

    assert captured.vault.verify(captured.project).ok, "a shallow verify reads no chunk"
    report = captured.vault.verify(captured.project, deep=True)
    [found] = report.damage
    assert (found.kind, found.key, found.versions) == ("chunk", key, (1,))
    expected = "bytes, the manifest says" if damage == "truncated" else "sha256"
    assert expected in found.problem
    assert report.summary()["damaged_versions"] == [1]
    json.dumps(report.summary())
    reader = captured.vault.reader(captured.project, 1)
    tables = ("datasets", "items", "annotations", "tags", "project", "users")
    with pytest.raises(IntegrityError, match=re.escape(key)):
        sum(batch.num_rows for table in tables for batch in reader.iter_batches(table))
    assert captured.readable(captured.v2) > 0
    assert captured.capture().number == 3


def test_versions_written_before_the_checks_stay_readable(captured: Captured) -> None:
    old_manifest = captured.vault.manifest(captured.v1).model_copy(update={"version_number": None})
    assert b"version_number" not in old_manifest.to_json()
    key = write_manifest(captured.store, captured.project.prefix, old_manifest)
    raw = captured.record(1)
    del raw["manifest_sha256"]
    raw.update(schema_version=1, manifest_key=key)
    captured.store.put(version_key(captured.project, 1), json.dumps(raw).encode())
    assert captured.vault.version(captured.project, 1).manifest_key == key
    assert captured.readable(captured.v1) > 0
    assert captured.vault.verify(captured.project, deep=True).ok
    # …and an old record is still checked for what it carries.
    captured.rewrite(1, content_hash="e" * 64)
    with pytest.raises(IntegrityError, match="content hash"):
        captured.vault.version(captured.project, 1)
