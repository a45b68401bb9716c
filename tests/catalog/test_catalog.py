"""The catalog protocol on every backend: commit and read, the lease, "no change", retried
commits, metadata updates, deletion, and records that cannot be read."""

from __future__ import annotations

import json
import re
import threading
from datetime import UTC, datetime, timedelta, timezone

import pytest

from labelvault.catalog import (
    RECORD_SCHEMA_VERSION,
    Catalog,
    Reservation,
    ReserveWait,
    VersionInfo,
    lease_key,
    meta_key,
    version_key,
)
from labelvault.errors import (
    CatalogError,
    CorruptRecord,
    LeaseHeld,
    LeaseLost,
    UnsupportedRecordVersion,
    VersionNotFound,
)
from labelvault.storage.base import ObjectStore
from tests.catalog.helpers import (
    FakeClock,
    LostResponse,
    WrappedStore,
    add_version,
    commit,
    fake_catalog,
    lose_response_once,
    new_project,
    reserve,
)

UPDATED = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


# --- commit and read ---------------------------------------------------------------------------


class TestCommitAndRead:
    def test_versions_are_numbered_from_one(self, store: ObjectStore) -> None:
        catalog, project = Catalog(store), new_project()
        assert catalog.latest(project) is None
        assert catalog.list(project) == []
        first = reserve(catalog, project)
        assert first.version_number == 1
        assert commit(catalog, first, "a").version.number == 1
        second = reserve(catalog, project)
        assert second.version_number == 2
        result = commit(catalog, second, "b", title="T", description="D", tags=["x", "y"])
        assert result.created
        assert (result.version.number, result.version.title) == (2, "T")
        assert result.version.tags == ("x", "y")
        assert [v.number for v in catalog.list(project)] == [1, 2]
        assert catalog.latest(project) == result.version

    def test_the_record_is_written_once_at_commit_with_its_token(self, store: ObjectStore) -> None:
        catalog, project = Catalog(store), new_project()
        reservation = reserve(catalog, project, holder="worker-1")
        assert not store.exists(version_key(project, 1))
        assert store.exists(lease_key(project))
        version = commit(
            catalog, reservation, "a", stats={"rows.items": 3}, source_updated_at=UPDATED
        ).version
        raw = json.loads(store.get(version_key(project, 1)).data)
        assert raw["schema_version"] == 2 <= RECORD_SCHEMA_VERSION
        assert raw["commit_token"] == reservation.commit_token == version.commit_token
        assert raw["id"] == version.id
        assert raw["stats"] == {"rows.items": 3}
        assert version.source_updated_at == UPDATED
        assert version.manifest_key == f"{project.prefix}/manifests/a.json"
        assert version.created_at.tzinfo is not None
        assert not store.exists(lease_key(project)), "commit must release the lease"

    def test_get_by_number_digits_and_id(self, store: ObjectStore) -> None:
        catalog, project = Catalog(store), new_project()
        versions = [add_version(catalog, project, name).version for name in "abc"]
        assert catalog.get(project, 2) == versions[1]
        assert catalog.get(project, "3") == versions[2]
        assert catalog.get(project, versions[0].id) == versions[0]
        assert len({v.id for v in versions}) == 3

    def test_unknown_versions_raise_version_not_found(self, store: ObjectStore) -> None:
        catalog, project = Catalog(store), new_project()
        with pytest.raises(VersionNotFound):
            catalog.get(project, 1)
        add_version(catalog, project, "a")
        with pytest.raises(VersionNotFound, match="no version 7") as caught:
            catalog.get(project, 7)
        assert caught.value.version == 7
        with pytest.raises(VersionNotFound):
            catalog.get(project, "0f0f0f0f-0000-4000-8000-000000000000")
        with pytest.raises(TypeError):
            catalog.get(project, True)

    def test_many_versions_list_in_order(self, store: ObjectStore) -> None:
        catalog, project = Catalog(store), new_project()
        for index in range(12):
            add_version(catalog, project, f"c{index}")
        listed = catalog.list(project)
        assert [v.number for v in listed] == list(range(1, 13))
        assert [v.content_hash for v in listed] == [f"hash-c{i}" for i in range(12)]

    def test_projects_have_separate_histories(self, store: ObjectStore) -> None:
        catalog = Catalog(store)
        one, two = new_project(), new_project("labelstudio")
        held = reserve(catalog, one)
        add_version(catalog, two, "other")  # not blocked by the first project's lease
        commit(catalog, held, "mine")
        assert [v.content_hash for v in catalog.list(one)] == ["hash-mine"]
        assert [v.content_hash for v in catalog.list(two)] == ["hash-other"]

    def test_tags_must_not_be_a_bare_string(self, store: ObjectStore) -> None:
        catalog, project = Catalog(store), new_project()
        reservation = reserve(catalog, project)
        with pytest.raises(TypeError, match="sequence of strings"):
            commit(catalog, reservation, "a", tags="release")


# --- the lease ---------------------------------------------------------------------------------


class TestLease:
    def test_a_second_caller_gives_up_naming_holder_and_expiry(self, store: ObjectStore) -> None:
        clock = FakeClock()
        project = new_project()
        holder = reserve(fake_catalog(store, clock, lease_seconds=600), project, holder="host-a:42")
        waiter = fake_catalog(store, clock, max_wait=10)
        with pytest.raises(LeaseHeld) as caught:
            waiter.reserve(project, holder="host-b:7")
        error = caught.value
        assert error.holder == "host-a:42"
        assert error.expires_at == holder.expires_at.isoformat()
        assert "host-a:42" in str(error)
        assert holder.expires_at.isoformat() in str(error)
        assert sum(clock.sleeps) == pytest.approx(10)

    def test_backoff_is_exponential_capped_and_bounded(self, store: ObjectStore) -> None:
        clock = FakeClock()
        project = new_project()
        reserve(fake_catalog(store, clock, lease_seconds=3600), project)
        waiter = fake_catalog(
            store, clock, initial=0.5, factor=2, max_delay=4, max_wait=20, jitter=0
        )
        with pytest.raises(LeaseHeld):
            waiter.reserve(project)
        assert clock.sleeps == pytest.approx([0.5, 1, 2, 4, 4, 4, 4, 0.5])

    def test_jittered_backoff_never_exceeds_the_cap_or_the_total(self, store: ObjectStore) -> None:
        clock = FakeClock()
        project = new_project()
        reserve(fake_catalog(store, clock, lease_seconds=3600), project)
        waiter = fake_catalog(store, clock, initial=0.1, max_delay=2, max_wait=30, jitter=1)
        with pytest.raises(LeaseHeld):
            waiter.reserve(project)
        assert max(clock.sleeps) <= 2
        assert sum(clock.sleeps) == pytest.approx(30)
        assert len(clock.sleeps) >= 15  # 30 s with delays of at most 2 s
        assert len(set(clock.sleeps)) > 5, "jitter should vary the delays"

    def test_an_expired_lease_is_taken_over_and_the_old_token_is_lost(
        self, store: ObjectStore
    ) -> None:
        clock = FakeClock()
        project = new_project()
        old_catalog = fake_catalog(store, clock, lease_seconds=10)
        old = reserve(old_catalog, project, holder="crashed")
        waiter = fake_catalog(store, clock, lease_seconds=10, max_wait=60, max_delay=30)
        new = reserve(waiter, project, holder="waiter")
        # The waiter slept exactly until the old lease expired, never past it.
        assert sum(clock.sleeps) == pytest.approx(10)
        assert new.version_number == 1
        assert new.commit_token != old.commit_token
        with pytest.raises(LeaseLost):
            commit(old_catalog, old, "late")
        with pytest.raises(LeaseLost):
            old_catalog.renew(old)
        old_catalog.cancel(old)  # a no-op: the lease is not the old holder's any more
        assert store.exists(lease_key(project))
        assert commit(waiter, new, "fresh").version.number == 1
        assert [v.content_hash for v in waiter.list(project)] == ["hash-fresh"]

    def test_a_waiter_proceeds_as_soon_as_the_holder_commits(self, store: ObjectStore) -> None:
        clock = FakeClock()
        project = new_project()
        catalog = fake_catalog(store, clock, max_wait=60)
        first = reserve(catalog, project)
        clock.on_sleep = lambda _: (
            commit(catalog, first, "first") if len(clock.sleeps) == 2 else None
        )
        second = reserve(catalog, project)
        assert len(clock.sleeps) == 2
        assert second.version_number == 2
        assert commit(catalog, second, "second").version.number == 2

    def test_renew_extends_the_lease(self, store: ObjectStore) -> None:
        clock = FakeClock()
        project = new_project()
        catalog = fake_catalog(store, clock, lease_seconds=10, max_wait=0)
        reservation = reserve(catalog, project)
        clock.advance(8)
        renewed = catalog.renew(reservation)
        assert renewed.expires_at == clock.now + timedelta(seconds=10)
        assert renewed.lease_etag != reservation.lease_etag
        clock.advance(8)  # past the first expiry, within the renewed one
        with pytest.raises(LeaseHeld):
            catalog.reserve(project)
        assert commit(catalog, reservation, "a").created  # the old object still names the token

    def test_a_lapsed_lease_nobody_took_is_renewed_at_commit(self, store: ObjectStore) -> None:
        clock = FakeClock()
        project = new_project()
        reservation = reserve(fake_catalog(store, clock, lease_seconds=10), project)
        clock.advance(15)  # lapsed, but nobody came for it
        lease_writes: list[str] = []
        wrapped = WrappedStore(store)

        def record_lease_writes(operation: str, key: str) -> None:
            if key == lease_key(project):
                lease_writes.append(operation)

        wrapped.before = record_lease_writes
        result = commit(Catalog(wrapped, lease_seconds=10, clock=clock), reservation, "late")
        assert result.created
        assert lease_writes == ["put_if_match"], "the commit re-takes the lapsed lease by CAS"
        assert not store.exists(lease_key(project))

    def test_cancel_is_idempotent_and_frees_the_number(self, store: ObjectStore) -> None:
        catalog, project = Catalog(store), new_project()
        reservation = reserve(catalog, project)
        catalog.cancel(reservation)
        catalog.cancel(reservation)
        assert not store.exists(lease_key(project))
        with pytest.raises(LeaseLost):
            commit(catalog, reservation, "a")
        with pytest.raises(LeaseLost):
            catalog.renew(reservation)
        again = reserve(catalog, project)
        assert again.version_number == 1
        assert commit(catalog, again, "a").version.number == 1

    def test_exactly_one_of_several_takers_wins_a_stale_lease(self, store: ObjectStore) -> None:
        clock = FakeClock()
        project = new_project()
        reserve(fake_catalog(store, clock, lease_seconds=5), project, holder="crashed")
        clock.advance(6)
        takers = 8
        # Every taker reads the stale lease before any of them tries to replace it.
        all_read = threading.Barrier(takers)
        wrapped = WrappedStore(store)

        def after_everyone_read(operation: str, key: str) -> None:
            if key == lease_key(project) and operation in ("put", "put_if_match"):
                all_read.wait(timeout=60)

        wrapped.before = after_everyone_read
        outcomes: list[Reservation | Exception] = []
        lock = threading.Lock()

        def take(index: int) -> None:
            # Each taker has its own catalog and a zero wait: it either wins or gives up.
            catalog = Catalog(wrapped, lease_seconds=60, wait=ReserveWait(max_wait=0), clock=clock)
            try:
                outcome: Reservation | Exception = reserve(catalog, project, holder=f"t{index}")
            except Exception as exc:
                outcome = exc
            with lock:
                outcomes.append(outcome)

        threads = [threading.Thread(target=take, args=(i,)) for i in range(takers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert not any(thread.is_alive() for thread in threads)
        assert len(outcomes) == takers
        winners = [o for o in outcomes if isinstance(o, Reservation)]
        assert len(winners) == 1, outcomes
        losers = [o for o in outcomes if isinstance(o, LeaseHeld)]
        assert len(losers) == takers - 1, outcomes
        assert {o.holder for o in losers} == {winners[0].holder}
        assert json.loads(store.get(lease_key(project)).data)["token"] == winners[0].commit_token


# --- "no change" -------------------------------------------------------------------------------


class TestNoChange:
    def test_unchanged_source_returns_the_existing_version(self, store: ObjectStore) -> None:
        catalog, project = Catalog(store), new_project()
        first = add_version(catalog, project, "a", source_updated_at=UPDATED).version
        same = catalog.reserve(project, source_updated_at=UPDATED)
        assert same == first
        assert not store.exists(lease_key(project)), "use-existing must hold nothing"
        # The same instant in another zone, or naive (taken as UTC), is the same moment.
        plus_two = timezone(timedelta(hours=2))
        assert catalog.reserve(project, source_updated_at=UPDATED.astimezone(plus_two)) == first
        assert catalog.reserve(project, source_updated_at=UPDATED.replace(tzinfo=None)) == first

    def test_a_moved_source_gets_a_reservation(self, store: ObjectStore) -> None:
        catalog, project = Catalog(store), new_project()
        add_version(catalog, project, "a", source_updated_at=UPDATED)
        moved = catalog.reserve(project, source_updated_at=UPDATED + timedelta(seconds=1))
        assert isinstance(moved, Reservation)
        catalog.cancel(moved)
        assert isinstance(catalog.reserve(project), Reservation)  # no timestamp: always capture

    def test_a_waiter_gets_the_version_its_holder_committed(self, store: ObjectStore) -> None:
        clock = FakeClock()
        project = new_project()
        catalog = fake_catalog(store, clock, max_wait=60)
        holder = reserve(catalog, project, source_updated_at=UPDATED)
        committed: list[VersionInfo] = []

        def holder_commits(_: float) -> None:
            if not committed:
                committed.append(commit(catalog, holder, "a").version)

        clock.on_sleep = holder_commits
        assert catalog.reserve(project, source_updated_at=UPDATED) == committed[0]
        assert committed[0].source_updated_at == UPDATED  # taken from the reservation
        assert not store.exists(lease_key(project))

    def test_identical_content_commits_nothing(self, store: ObjectStore) -> None:
        catalog, project = Catalog(store), new_project()
        first = add_version(catalog, project, "same").version
        result = add_version(catalog, project, "same", title="ignored")
        assert not result.created
        assert result.version == first
        assert [v.number for v in catalog.list(project)] == [1]
        assert not store.exists(version_key(project, 2))
        assert not store.exists(lease_key(project)), "no-change commit must release the lease"
        assert add_version(catalog, project, "changed").version.number == 2


# --- a commit retried after a lost response --------------------------------------------------


class TestRetriedCommit:
    def test_record_landed_but_response_lost(self, store: ObjectStore) -> None:
        wrapped = WrappedStore(store)
        catalog, project = Catalog(wrapped), new_project()
        add_version(catalog, project, "a")
        reservation = reserve(catalog, project)
        hit = lose_response_once(wrapped, "put_if_absent", "/versions/")
        with pytest.raises(LostResponse):
            commit(catalog, reservation, "b")
        assert hit == [version_key(project, 2)]
        retried = commit(catalog, reservation, "b")
        assert retried.created
        assert retried.version.number == 2
        assert retried.version.commit_token == reservation.commit_token
        assert [v.number for v in catalog.list(project)] == [1, 2]
        assert not store.exists(lease_key(project))
        # And once more, long after: still the same answer, still no duplicate.
        assert commit(catalog, reservation, "b").version == retried.version
        assert [v.number for v in catalog.list(project)] == [1, 2]

    def test_lost_response_after_the_lease_was_released(self, store: ObjectStore) -> None:
        wrapped = WrappedStore(store)
        catalog, project = Catalog(wrapped), new_project()
        reservation = reserve(catalog, project)
        lose_response_once(wrapped, "delete", "lease.json")
        with pytest.raises(LostResponse):
            commit(catalog, reservation, "a")
        retried = commit(catalog, reservation, "a")
        assert (retried.created, retried.version.number) == (True, 1)
        assert len(catalog.list(project)) == 1

    def test_lost_response_then_cancel_then_retry(self, store: ObjectStore) -> None:
        """What a capture does on an error: cancel; a retry of the commit still succeeds."""
        wrapped = WrappedStore(store)
        catalog, project = Catalog(wrapped), new_project()
        reservation = reserve(catalog, project)
        lose_response_once(wrapped, "put_if_absent", "/versions/")
        with pytest.raises(LostResponse):
            commit(catalog, reservation, "a")
        catalog.cancel(reservation)
        assert not store.exists(lease_key(project))
        assert commit(catalog, reservation, "a").version.number == 1
        other = reserve(catalog, project)
        assert other.version_number == 2


# --- metadata updates --------------------------------------------------------------------------


class TestUpdate:
    def test_update_merges_and_leaves_the_record_untouched(self, store: ObjectStore) -> None:
        clock = FakeClock()
        catalog, project = fake_catalog(store, clock), new_project()
        version = add_version(catalog, project, "a", title="old", tags=["a"]).version
        record = store.get(version_key(project, 1))
        clock.advance(5)
        updated = catalog.update(project, 1, title="new", tags=["release", "qa"])
        assert (updated.title, updated.description, updated.tags) == ("new", "", ("release", "qa"))
        assert updated.metadata_updated_at == clock.now
        assert version.metadata_updated_at is None
        again = catalog.update(project, version.id, description="notes")
        assert (again.title, again.description, again.tags) == ("new", "notes", ("release", "qa"))
        assert catalog.get(project, 1) == again
        assert catalog.list(project) == [again]
        assert catalog.latest(project) == again
        assert store.get(version_key(project, 1)) == record, "the record is write-once"
        assert again.model_dump(
            exclude={"title", "description", "tags", "metadata_updated_at"}
        ) == (version.model_dump(exclude={"title", "description", "tags", "metadata_updated_at"}))

    def test_update_without_changes_writes_nothing(self, store: ObjectStore) -> None:
        catalog, project = Catalog(store), new_project()
        version = add_version(catalog, project, "a").version
        assert catalog.update(project, 1) == version
        assert not store.exists(meta_key(project, 1))
        with pytest.raises(VersionNotFound):
            catalog.update(project, 9, title="x")

    def test_concurrent_updates_both_land(self, store: ObjectStore) -> None:
        wrapped = WrappedStore(store)
        catalog, project = Catalog(wrapped), new_project()
        add_version(catalog, project, "a")
        catalog.update(project, 1, title="first")
        interfered: list[str] = []

        def meanwhile(operation: str, key: str) -> None:
            # Another writer updates the tags between our read and our compare-and-swap.
            if key.endswith(f"meta/{1:08d}.json") and not interfered:
                interfered.append(operation)
                Catalog(store).update(project, 1, tags=["from-other"])

        wrapped.before = meanwhile
        result = catalog.update(project, 1, title="second")
        assert interfered == ["put_if_match"]
        assert (result.title, result.tags) == ("second", ("from-other",))
        assert catalog.get(project, 1) == result

    def test_metadata_of_another_version_id_is_ignored(self, store: ObjectStore) -> None:
        catalog, project = Catalog(store), new_project()
        add_version(catalog, project, "a", title="kept")
        stale = {
            "schema_version": 1,
            "version_id": "some-other-version",
            "title": "stale",
            "updated_at": "2026-01-01T00:00:00Z",
        }
        store.put(meta_key(project, 1), json.dumps(stale).encode())
        assert catalog.get(project, 1).title == "kept"


# --- deleting versions -------------------------------------------------------------------------


class TestDeleteVersion:
    def test_delete_removes_record_and_metadata(self, store: ObjectStore) -> None:
        catalog, project = Catalog(store), new_project()
        for name in "abc":
            add_version(catalog, project, name)
        catalog.update(project, 2, tags=["x"])
        deleted = catalog.delete_version(project, 2)
        assert deleted.tags == ("x",)
        assert not store.exists(version_key(project, 2))
        assert not store.exists(meta_key(project, 2))
        with pytest.raises(VersionNotFound):
            catalog.get(project, 2)
        with pytest.raises(VersionNotFound):
            catalog.delete_version(project, 2)
        assert [v.number for v in catalog.list(project)] == [1, 3]

    def test_the_latest_version_is_never_deleted(self, store: ObjectStore) -> None:
        catalog, project = Catalog(store), new_project()
        add_version(catalog, project, "a")
        add_version(catalog, project, "b")
        with pytest.raises(CatalogError, match="latest"):
            catalog.delete_version(project, 2)
        catalog.delete_version(project, 1)
        assert add_version(catalog, project, "c").version.number == 3


# --- records that cannot be read ---------------------------------------------------------------


class TestBadRecords:
    def test_corrupt_record_names_its_key(self, store: ObjectStore) -> None:
        catalog, project = Catalog(store), new_project()
        add_version(catalog, project, "a")
        key = version_key(project, 2)
        store.put(key, b"{not json")
        for read in (catalog.latest, lambda p: catalog.get(p, 2)):
            with pytest.raises(CorruptRecord, match=re.escape(key)) as caught:
                read(project)
            assert caught.value.version == 2
        assert catalog.get(project, 1).number == 1  # the others stay readable
        listed = catalog.list(project)
        assert [v.number for v in listed] == [1]
        assert [(d.number, d.key) for d in listed.damaged] == [(2, key)]
        assert "not valid JSON" in listed.damaged[0].problem

    def test_a_record_that_is_not_a_version_is_corrupt(self, store: ObjectStore) -> None:
        catalog, project = Catalog(store), new_project()
        store.put(version_key(project, 1), json.dumps({"schema_version": 1, "number": 1}).encode())
        with pytest.raises(CorruptRecord, match="not a valid VersionRecord"):
            catalog.get(project, 1)
        store.put(version_key(project, 1), b"[1, 2]")
        with pytest.raises(CorruptRecord, match="expected a JSON object"):
            catalog.get(project, 1)
        # A corrupt latest record still holds its number: the next version gets the one after.
        assert add_version(catalog, project, "b").version.number == 2

    def test_a_record_under_the_wrong_number_is_corrupt(self, store: ObjectStore) -> None:
        catalog, project = Catalog(store), new_project()
        add_version(catalog, project, "a")
        store.put(version_key(project, 5), store.get(version_key(project, 1)).data)
        with pytest.raises(CorruptRecord, match="describes version 1"):
            catalog.get(project, 5)

    def test_records_from_a_newer_schema_are_refused(self, store: ObjectStore) -> None:
        catalog, project = Catalog(store), new_project()
        add_version(catalog, project, "a")
        raw = json.loads(store.get(version_key(project, 1)).data)
        raw.update(schema_version=RECORD_SCHEMA_VERSION + 1, new_field="from the future")
        store.put(version_key(project, 1), json.dumps(raw).encode())
        with pytest.raises(UnsupportedRecordVersion) as caught:
            catalog.get(project, 1)
        message = str(caught.value)
        assert f"schema version {RECORD_SCHEMA_VERSION + 1}" in message
        assert f"up to version {RECORD_SCHEMA_VERSION}" in message

    def test_a_lease_from_a_newer_schema_is_not_trampled(self, store: ObjectStore) -> None:
        catalog, project = Catalog(store), new_project()
        lease = {"schema_version": RECORD_SCHEMA_VERSION + 1, "owner": "future"}
        store.put(lease_key(project), json.dumps(lease).encode())
        with pytest.raises(UnsupportedRecordVersion, match=r"lease\.json"):
            catalog.reserve(project)

    def test_corrupt_metadata_is_reported(self, store: ObjectStore) -> None:
        catalog, project = Catalog(store), new_project()
        add_version(catalog, project, "a")
        store.put(meta_key(project, 1), b"\xff\xfe")
        with pytest.raises(CorruptRecord, match=re.escape(meta_key(project, 1))):
            catalog.get(project, 1)
