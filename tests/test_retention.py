"""Retention on every backend: which versions a policy keeps, and what expiring deletes.

The history used throughout: five versions committed a day apart (``v1`` … ``v5``). Every
version references the chunk ``shared``, a chunk of its own (``own-N``) and its manifest;
``v1`` and ``v3`` also share ``pair-13``. Orphans (referenced by no version) sit next to them,
one old and one written ten seconds ago.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from labelvault.catalog import Catalog, Reservation, lease_key, version_key
from labelvault.errors import IntegrityError, LeaseHeld
from labelvault.models import ProjectRef, VersionInfo
from labelvault.retention import ExpiryReport, RetentionPolicy, expire, plan_expiry
from labelvault.storage.base import ObjectStore
from tests.catalog.backends import store
from tests.catalog.helpers import (
    FakeClock,
    WrappedStore,
    add_version,
    fake_catalog,
    new_project,
    reserve,
)

__all__ = ["store"]  # the backend fixture, imported for these tests

DAY = timedelta(days=1)


@dataclass
class History:
    store: WrappedStore
    clock: FakeClock
    catalog: Catalog
    project: ProjectRef
    refs: dict[int, set[str]] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)

    def key(self, folder: str, name: str) -> str:
        suffix = "json" if folder == "manifests" else "parquet"
        return f"{self.project.prefix}/{folder}/{name}.{suffix}"

    def write(self, key: str, size: int) -> str:
        self.store.put(key, b"x" * size)
        self.sizes[key] = size
        return key

    def referenced_keys(self, version: VersionInfo) -> set[str]:
        return self.refs[version.number]

    def keys(self) -> dict[str, str]:
        return {info.key: info.etag for info in self.store.list("")}


@pytest.fixture
def history(store: ObjectStore) -> History:
    wrapped = WrappedStore(store)
    clock = FakeClock()
    made = History(wrapped, clock, fake_catalog(wrapped, clock, max_wait=0), new_project())
    shared = made.write(made.key("chunks", "shared"), 1000)
    pair = made.write(made.key("chunks", "pair-13"), 300)
    for number in range(1, 6):
        own = made.write(made.key("chunks", f"own-{number}"), 100 * number)
        manifest = made.write(made.key("manifests", f"v{number}"), 10)
        made.refs[number] = {shared, own} | ({pair} if number in (1, 3) else set())
        version = add_version(made.catalog, made.project, f"v{number}").version
        assert version.number == number
        assert version.manifest_key == manifest
        clock.advance(DAY.total_seconds())
    clock.advance(-DAY.total_seconds())  # "now" is the day of v5
    # Everything above was written moments ago in real time; retention judges age by the
    # catalog's clock, days later: all of it is old. One orphan is made fresh explicitly.
    made.write(made.key("chunks", "orphan-old"), 7)
    made.write(made.key("manifests", "orphan-old"), 3)
    fresh = made.write(made.key("chunks", "orphan-fresh"), 5)
    wrapped.modified[fresh] = clock.now - timedelta(seconds=10)
    return made


def numbers(versions: tuple[VersionInfo, ...]) -> list[int]:
    return [v.number for v in versions]


# --- plans -------------------------------------------------------------------------------------


class TestPlan:
    def test_keep_last_and_tagged(self, history: History) -> None:
        history.catalog.update(history.project, 2, tags=["gold"])
        plan = plan_expiry(history.catalog, history.project, RetentionPolicy(keep_last=2))
        assert numbers(plan.kept) == [2, 4, 5]
        assert numbers(plan.expired) == [1, 3]
        reasons = {d.version.number: d.reasons for d in plan.decisions}
        assert reasons[1] == ("not among the last 2", "untagged")
        assert reasons[2] == ("tagged gold",)
        assert reasons[4] == ("among the last 2",)
        assert reasons[5] == ("latest", "among the last 2")

    def test_tags_do_not_protect_when_keep_tagged_is_off(self, history: History) -> None:
        history.catalog.update(history.project, 2, tags=["gold"])
        policy = RetentionPolicy(keep_last=2, keep_tagged=False)
        assert numbers(plan_expiry(history.catalog, history.project, policy).expired) == [1, 2, 3]

    def test_keep_younger_than(self, history: History) -> None:
        policy = RetentionPolicy(keep_younger_than=timedelta(days=2, hours=12), keep_tagged=False)
        plan = plan_expiry(history.catalog, history.project, policy)
        assert numbers(plan.kept) == [3, 4, 5]  # ages 2, 1 and 0 days
        later = plan_expiry(history.catalog, history.project, policy, now=history.clock.now + DAY)
        assert numbers(later.kept) == [4, 5]

    def test_rules_combine_and_the_latest_is_always_kept(self, history: History) -> None:
        history.catalog.update(history.project, 1, tags=["baseline"])
        nothing = RetentionPolicy(keep_last=0, keep_tagged=False)
        assert numbers(plan_expiry(history.catalog, history.project, nothing).kept) == [5]
        either = RetentionPolicy(keep_last=1, keep_younger_than=timedelta(hours=36))
        assert numbers(plan_expiry(history.catalog, history.project, either).kept) == [1, 4, 5]
        everything = RetentionPolicy(keep_last=50)
        assert numbers(plan_expiry(history.catalog, history.project, everything).expired) == []

    def test_a_policy_needs_a_rule(self) -> None:
        with pytest.raises(ValidationError, match="keep_last or keep_younger_than"):
            RetentionPolicy()
        with pytest.raises(ValidationError):
            RetentionPolicy(keep_last=-1)
        with pytest.raises(ValidationError, match="positive"):
            RetentionPolicy(keep_younger_than=timedelta(0))


# --- expiring ----------------------------------------------------------------------------------


def expire_history(history: History, policy: RetentionPolicy, **options: Any) -> ExpiryReport:
    return expire(
        history.store,
        history.catalog,
        history.project,
        policy,
        referenced_keys=history.referenced_keys,
        **options,
    )


class TestExpire:
    def test_a_dry_run_deletes_nothing_and_says_what_it_would(self, history: History) -> None:
        held = reserve(history.catalog, history.project)  # a dry run needs no lease
        before = history.keys()
        report = expire_history(history, RetentionPolicy(keep_last=2))
        assert history.keys() == before
        assert report.dry_run
        assert report.versions_deleted == (1, 2, 3)
        assert set(report.freed.keys) == {
            history.key("chunks", "own-1"),
            history.key("chunks", "own-2"),
            history.key("chunks", "own-3"),
            history.key("chunks", "pair-13"),
            history.key("manifests", "v1"),
            history.key("manifests", "v2"),
            history.key("manifests", "v3"),
        }
        assert report.freed.bytes == 100 + 200 + 300 + 300 + 3 * 10
        assert set(report.orphans.keys) == {
            history.key("chunks", "orphan-old"),
            history.key("manifests", "orphan-old"),
        }
        assert report.fresh_orphans.keys == (history.key("chunks", "orphan-fresh"),)
        assert report.deleted_count == 9
        assert report.deleted_bytes == 930 + 10
        assert report.summary()["versions_deleted"] == [1, 2, 3]
        history.catalog.cancel(held)

    def test_expire_deletes_versions_and_data_no_live_version_uses(self, history: History) -> None:
        other = new_project()
        elsewhere = {
            history.write(f"{other.prefix}/chunks/foreign.parquet", 9),
            history.write(f"{history.project.prefix}/notes/readme.txt", 9),
        }
        report = expire_history(history, RetentionPolicy(keep_last=2), dry_run=False)
        assert not report.dry_run
        assert report.versions_deleted == (1, 2, 3)
        assert numbers(tuple(history.catalog.list(history.project))) == [4, 5]
        remaining = set(history.keys())
        survivors = {
            history.key("chunks", "shared"),  # v1–v3 used it too, but so do v4 and v5
            history.key("chunks", "own-4"),
            history.key("chunks", "own-5"),
            history.key("manifests", "v4"),
            history.key("manifests", "v5"),
            history.key("chunks", "orphan-fresh"),  # too young: maybe a capture's chunk
        }
        data = {k for k in remaining if "/chunks/" in k or "/manifests/" in k} - elsewhere
        assert {k for k in data if k.startswith(history.project.prefix)} == survivors
        assert elsewhere <= remaining
        assert report.live.count == 5
        assert report.deleted_count == 9
        assert report.deleted_bytes == sum(
            size for key, size in history.sizes.items() if key not in survivors | elsewhere
        )
        assert not history.store.exists(lease_key(history.project)), "the lease is released"

        again = expire_history(history, RetentionPolicy(keep_last=2), dry_run=False)
        assert (again.versions_deleted, again.deleted_count) == ((), 0)

    def test_tagged_versions_keep_their_chunks(self, history: History) -> None:
        history.catalog.update(history.project, 3, tags=["release"])
        expire_history(history, RetentionPolicy(keep_last=1), dry_run=False)
        assert numbers(tuple(history.catalog.list(history.project))) == [3, 5]
        assert history.store.exists(history.key("chunks", "pair-13"))  # v3 still needs it
        assert not history.store.exists(history.key("chunks", "own-1"))

    def test_fresh_orphans_are_collected_once_older_than_the_grace(self, history: History) -> None:
        fresh = history.key("chunks", "orphan-fresh")
        policy = RetentionPolicy(keep_last=10)
        kept = expire_history(history, policy, dry_run=False, grace=timedelta(minutes=5))
        assert kept.fresh_orphans.keys == (fresh,)
        assert history.store.exists(fresh)
        collected = expire_history(history, policy, dry_run=False, grace=timedelta(seconds=5))
        assert collected.orphans.keys == (fresh,)
        assert not history.store.exists(fresh)

    def test_expire_waits_for_a_capture_holding_the_project(self, history: History) -> None:
        before = history.keys()
        held = reserve(history.catalog, history.project, holder="capture")
        with pytest.raises(LeaseHeld, match="capture"):
            expire_history(history, RetentionPolicy(keep_last=1), dry_run=False)
        history.catalog.cancel(held)
        assert {k: v for k, v in history.keys().items() if not k.endswith("lease.json")} == before

    def test_unreadable_references_delete_nothing(self, history: History) -> None:
        before = history.keys()

        def broken(version: VersionInfo) -> set[str]:
            if version.number == 4:
                raise RuntimeError("manifest of version 4 is unreadable")
            return history.refs[version.number]

        with pytest.raises(RuntimeError, match="unreadable"):
            expire(
                history.store,
                history.catalog,
                history.project,
                RetentionPolicy(keep_last=2),
                referenced_keys=broken,
                dry_run=False,
            )
        assert history.keys() == before
        assert not history.store.exists(lease_key(history.project))

    def test_a_long_expiry_renews_its_lease(
        self, history: History, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        renewals: list[int] = []
        renew = history.catalog.renew

        def counting(reservation: Reservation) -> Reservation:
            renewals.append(1)
            return renew(reservation)

        monkeypatch.setattr(history.catalog, "renew", counting)

        def slow_delete(operation: str, key: str) -> None:
            if operation == "delete":
                history.clock.advance(25)  # each delete takes 25 s of a 60 s lease

        history.store.after = slow_delete
        report = expire_history(history, RetentionPolicy(keep_last=1), dry_run=False)
        assert report.versions_deleted == (1, 2, 3, 4)
        assert len(renewals) >= 5
        assert not history.store.exists(lease_key(history.project))


class TestDamage:
    def test_a_corrupt_record_holds_the_data_but_healthy_versions_still_expire(
        self, history: History
    ) -> None:
        history.store.put(version_key(history.project, 2), b"{not json")
        before = {k for k, _ in history.keys().items() if "/versions/" not in k}
        report = expire_history(history, RetentionPolicy(keep_last=2), dry_run=False)
        assert report.versions_deleted == (1, 3)
        assert report.damaged
        assert report.damaged[0].startswith("version 2:")
        assert report.deleted_count == 0
        assert history.key("chunks", "own-1") in report.held.keys
        assert history.key("chunks", "orphan-old") in report.held.keys
        assert report.summary()["objects_held_for_damaged"] == report.held.count
        assert {k for k, _ in history.keys().items() if "/versions/" not in k} == before
        listed = history.catalog.list(history.project)
        assert [v.number for v in listed] == [4, 5]
        assert [d.number for d in listed.damaged] == [2]

    def test_a_version_whose_references_are_damaged_is_kept(self, history: History) -> None:
        def broken(version: VersionInfo) -> set[str]:
            if version.number == 2:
                raise IntegrityError("manifest of version 2 is missing", key="m")
            return history.refs[version.number]

        report = expire(
            history.store,
            history.catalog,
            history.project,
            RetentionPolicy(keep_last=2),
            referenced_keys=broken,
            dry_run=False,
        )
        assert report.versions_deleted == (1, 3)
        assert report.damaged == ("version 2: manifest of version 2 is missing",)
        assert report.deleted_count == 0
        assert [v.number for v in history.catalog.list(history.project)] == [2, 4, 5]
