"""Restore: round trips, skip/failure reports, and resuming a killed restore without duplicates."""

from __future__ import annotations

import json
import secrets
from collections import Counter
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from labelvault.errors import ConfigurationError, RequestRejected, RestoreError
from labelvault.http import RequestSettings
from labelvault.models import RestoreOptions, RestoreReport, VersionOrigin
from labelvault.platforms.base import (
    ProjectInfo,
    RestoreJournal,
    RestoreProgress,
    RestoreRequest,
    TableReader,
)
from labelvault.platforms.keyed import restore_keyed
from labelvault.platforms.streams import Row
from labelvault.platforms.supervisely import SuperviselyPlatform
from labelvault.restore import journal_prefix, restore_version
from labelvault.snapshot.reader import SnapshotReader
from labelvault.snapshot.schema import schema_for
from labelvault.snapshot.writer import SnapshotWriter
from labelvault.storage.memory import MemoryStore
from tests.fakes.supervisely import (
    FakeSupervisely,
    RichProject,
    capture_tables,
    generate_rich_project,
    table_reader,
)
from tests.fakes.supervisely import fingerprint_multisets as all_fingerprints

Tables = dict[str, list[Any]]


class Killed(Exception):
    """The process died (not a labelvault error: nothing catches it)."""


class KillingStore(MemoryStore):
    """A store that dies once, the first time a key containing ``fragment`` is written."""

    def __init__(self, fragment: str) -> None:
        super().__init__("killing")
        self.fragment = fragment
        self.killed = False

    def _maybe_die(self, key: str) -> None:
        if self.fragment in key and not self.killed:
            self.killed = True
            raise Killed(key)

    def put_if_absent(self, key: str, data: bytes) -> str:
        self._maybe_die(key)
        return super().put_if_absent(key, data)

    def put_if_match(self, key: str, data: bytes, etag: str) -> str:
        self._maybe_die(key)
        return super().put_if_match(key, data, etag)


@pytest.fixture
def fake() -> FakeSupervisely:
    return FakeSupervisely(default_per_page=6)


@pytest.fixture
def rich(fake: FakeSupervisely) -> RichProject:
    return generate_rich_project(fake)


@pytest.fixture
def platform(fake: FakeSupervisely) -> SuperviselyPlatform:
    return fake.platform(batch_size=4, list_page_size=5)


@pytest.fixture
def source(platform: SuperviselyPlatform, rich: RichProject) -> Tables:
    return capture_tables(platform, str(rich.project_id))


_ORIGIN_FIELDS = ("version_number", "source_project_id", "version_id")


def origin(rich: RichProject, **overrides: Any) -> VersionOrigin:
    values: dict[str, Any] = {
        "version_number": 3,
        "source_project_id": str(rich.project_id),
        "version_id": "v-0003",
    }
    values.update({k: v for k, v in overrides.items() if k in _ORIGIN_FIELDS})
    return VersionOrigin(**values)


def options(rich: RichProject, **overrides: Any) -> RestoreOptions:
    values: dict[str, Any] = {"batch_size": 4}
    values.update({k: v for k, v in overrides.items() if k not in _ORIGIN_FIELDS})
    return RestoreOptions(**values)


def restore(
    platform: SuperviselyPlatform,
    tables: Tables,
    rich: RichProject,
    *,
    store: MemoryStore | None = None,
    journal: str = "supervisely/restores/r1",
    parallel: int = 1,
    progress: RestoreProgress | None = None,
    **overrides: Any,
) -> RestoreReport:
    return restore_version(
        platform,
        table_reader(tables),
        store=store if store is not None else MemoryStore(),
        journal=journal,
        origin=origin(rich, **overrides),
        options=options(rich, **overrides),
        parallel=parallel,
        progress=progress,
    )


def fingerprint_multisets(tables: Tables) -> dict[str, dict[str, int]]:
    """Per table but ``users``, how often each fingerprint occurs. Supervisely's API cannot
    set who labelled a figure or assigned a tag, so a restored project's users are the
    restoring token's user (see :func:`test_authors_are_captured_not_restored`)."""
    return {t: c for t, c in all_fingerprints(tables).items() if t != "users"}


def without(tables: Tables, keys: set[str]) -> dict[str, Counter[str]]:
    """Fingerprint multisets of ``tables`` (but ``users``) minus the rows with these keys."""
    out: dict[str, Counter[str]] = {}
    for table, batches in tables.items():
        if table == "users":
            continue
        counts: Counter[str] = Counter()
        for batch in batches:
            for key, value in zip(
                batch.column("key").to_pylist(),
                batch.column("fingerprint").to_pylist(),
                strict=True,
            ):
                if key not in keys:
                    counts[value] += 1
        out[table] = counts
    return out


def project_names(fake: FakeSupervisely) -> list[str]:
    return sorted(p["name"] for p in fake.projects.values())


# --- round trips ----------------------------------------------------------------------------


def test_round_trip_gives_the_same_content(
    fake: FakeSupervisely, platform: SuperviselyPlatform, rich: RichProject, source: Tables
) -> None:
    report = restore(platform, source, rich)
    assert report.failures == ()
    assert report.skipped == ()
    assert report.created == {
        "users": 0,
        "datasets": 6,
        "items": 30,
        "annotations": len(fake.figures) // 2,
        "tags": report.created["tags"],
    }
    again = capture_tables(platform, report.project.project_id)
    assert fingerprint_multisets(again) == fingerprint_multisets(source)
    assert {t: len(b) for t, b in fingerprint_multisets(again).items()} == {
        t: len(b) for t, b in fingerprint_multisets(source).items()
    }

    new = fake.projects[int(report.project.project_id)]
    old = fake.projects[rich.project_id]
    assert new["name"] == "Проект λ — rich 🚀, from ver. 3"
    assert new["description"] == (
        f"Restored from version 3. Source project ID: {rich.project_id}, version ID: v-0003"
        "\n\nStreet scenes — 街景, with ünïcode"
    )
    assert new["workspaceId"] == old["workspaceId"]
    assert new["readme"] == old["readme"]
    assert new["customData"] == old["customData"]
    new_tags = {t["name"]: t["id"] for t in fake.metas[new["id"]]["tags"]}
    assert (
        new["settings"]["groupImagesByTagId"]
        == new_tags["group"]
        != old["settings"]["groupImagesByTagId"]
    )
    # media referenced, never uploaded
    assert "images.bulk.upload" not in fake.methods_called()
    # alpha masks came back with their geometry
    restored_alpha = [
        f
        for f in fake.figures.values()
        if f["projectId"] == new["id"] and f["geometryType"] == "alpha_mask"
    ]
    assert restored_alpha
    assert all(fake.alpha.get(f["id"]) for f in restored_alpha)


def test_round_trip_notices_a_sub_pixel_shift(
    fake: FakeSupervisely, platform: SuperviselyPlatform, rich: RichProject, source: Tables
) -> None:
    report = restore(platform, source, rich)
    with fake.lock:
        figure = next(
            f
            for f in fake.figures.values()
            if f["projectId"] == int(report.project.project_id) and f["geometryType"] == "rectangle"
        )
        figure["geometry"]["points"]["exterior"][1][1] += 1e-7
    again = capture_tables(platform, report.project.project_id)
    assert (
        fingerprint_multisets(again)["annotations"] != fingerprint_multisets(source)["annotations"]
    )


def test_round_trip_through_the_snapshot_format(
    fake: FakeSupervisely, platform: SuperviselyPlatform, rich: RichProject
) -> None:
    """capture → snapshot → restore from the snapshot reader → capture: same content."""
    store = MemoryStore()

    def capture(project_id: str) -> Any:
        writer = SnapshotWriter(
            store,
            f"supervisely/sly.test/{project_id}",
            source={
                "platform": "supervisely",
                "instance": platform.instance,
                "project_id": project_id,
            },
            target_chunk_rows=16,
        )
        for page in platform.iter_pages(project_id):
            writer.write(page.table, page.batch)
        return writer.finish()

    first = capture(str(rich.project_id))
    reader = SnapshotReader(store, first)
    report = restore_version(
        platform,
        lambda table: reader.iter_batches(table, batch_rows=5),
        store=store,
        journal="supervisely/restores/from-snapshot",
        origin=origin(rich),
        options=options(rich),
    )
    second = capture(report.project.project_id)

    def sums(manifest: Any) -> dict[str, tuple[int, str]]:
        # users aside: the restoring token's user labelled everything restored
        return {t: (m.rows, m.content_sum) for t, m in manifest.tables.items() if t != "users"}

    assert sums(second) == sums(first)


def test_restore_into_another_workspace_with_a_name_clash(
    fake: FakeSupervisely, platform: SuperviselyPlatform, rich: RichProject, source: Tables
) -> None:
    workspace = fake.add_workspace("Elsewhere")
    fake.create_project(name="mine", workspace_id=workspace)
    fake.create_project(name="mine_001", workspace_id=workspace)
    store = MemoryStore()
    projects = len(fake.projects)
    with pytest.raises(ConfigurationError, match=r"already has a project named 'mine'.*--allow"):
        restore(
            platform,
            source,
            rich,
            store=store,
            workspace_id=str(workspace),
            project_name="mine",
            journal="j/a",
        )
    assert len(fake.projects) == projects  # refused before creating anything
    first = restore(
        platform,
        source,
        rich,
        store=store,
        workspace_id=str(workspace),
        project_name="mine",
        journal="j/a",
        allow_duplicate_name=True,
    )
    assert first.project.name == "mine_002"
    assert first.project.workspace_id == str(workspace)
    second = restore(platform, source, rich, workspace_id=str(workspace), journal="j/b")
    with pytest.raises(ConfigurationError, match="already has a project named"):
        restore(platform, source, rich, workspace_id=str(workspace), journal="j/c")
    third = restore(
        platform,
        source,
        rich,
        workspace_id=str(workspace),
        journal="j/c",
        allow_duplicate_name=True,
    )
    assert (second.project.name, third.project.name) == (
        "Проект λ — rich 🚀, from ver. 3",
        "Проект λ — rich 🚀, from ver. 3_001",
    )


# --- missing media, failures ----------------------------------------------------------------


def test_skip_missed_entities_reports_what_it_skipped(
    fake: FakeSupervisely, platform: SuperviselyPlatform, rich: RichProject, source: Tables
) -> None:
    gone_hash = fake.images[rich.hash_images[2]]
    dead_link = fake.images[rich.link_images[1]]
    fake.forget_hash(gone_hash["hash"])
    fake.break_link(dead_link["link"])
    report = restore(platform, source, rich, skip_missed_entities=True)

    items = {i.key: i.reason for i in report.skipped if i.table == "items"}
    assert len(items) == 2
    assert any("no longer exists" in r for r in items.values())
    assert any("answered HEAD 404" in r for r in items.values())
    dependents = [i for i in report.skipped if i.table != "items"]
    assert dependents
    assert all(any(i.key.startswith(k) for k in items) for i in dependents)
    assert report.failures == ()
    assert report.created["items"] == 28

    skipped = {i.key for i in report.skipped}
    again = capture_tables(platform, report.project.project_id)
    assert fingerprint_multisets(again) == {t: dict(c) for t, c in without(source, skipped).items()}


def test_missing_media_stops_the_restore_and_says_where(
    fake: FakeSupervisely, platform: SuperviselyPlatform, rich: RichProject, source: Tables
) -> None:
    fake.forget_hash(fake.images[rich.hash_images[5]]["hash"])
    with pytest.raises(RestoreError) as info:
        restore(platform, source, rich)
    error = info.value
    assert error.created_project is not None
    assert int(error.created_project) in fake.projects
    assert error.progress["datasets"] == 6
    assert error.progress["items"] > 0
    assert f"created project {error.created_project}" in str(error)
    assert "HASHES_NOT_FOUND" in str(error) or "do not exist" in str(error)
    assert "Run it again with the same restore id" in str(error)


def test_allow_failures_continues_and_lists_failures(
    fake: FakeSupervisely, platform: SuperviselyPlatform, rich: RichProject, source: Tables
) -> None:
    lost = fake.images[rich.hash_images[5]]
    fake.forget_hash(lost["hash"])
    report = restore(platform, source, rich, allow_failures=True)
    assert [f.table for f in report.failures] == ["items"]
    (failure,) = report.failures
    assert "do not exist" in failure.reason
    assert all("was not restored" in s.reason for s in report.skipped)
    assert report.skipped, "the failed item's annotations and tags are reported"
    lost_key = failure.key
    assert report.created["items"] == 29
    again = capture_tables(platform, report.project.project_id)
    dropped = {lost_key} | {s.key for s in report.skipped}
    assert fingerprint_multisets(again) == {t: dict(c) for t, c in without(source, dropped).items()}


def test_auth_failure_is_never_allowed(
    fake: FakeSupervisely, platform: SuperviselyPlatform, rich: RichProject, source: Tables
) -> None:
    fake.fail_next("figures.bulk.add", 401, body={"error": "Unauthorized", "details": {}})
    with pytest.raises(RestoreError, match="401"):
        restore(platform, source, rich, allow_failures=True)


def test_orphans_and_missing_parents(
    fake: FakeSupervisely, platform: SuperviselyPlatform, rich: RichProject, source: Tables
) -> None:
    """A version that lacks an item row (or a dataset's parent) restores the rest."""
    items = pa.Table.from_batches(source["items"])
    dropped_item = items.column("key")[1].as_py()  # in "train", not in "city"
    trimmed = dict(source)
    trimmed["items"] = items.filter(pc.not_equal(items.column("key"), dropped_item)).to_batches(
        max_chunksize=3
    )
    datasets = pa.Table.from_batches(source["datasets"])
    middle = next(r["key"] for r in datasets.to_pylist() if r["name"] == "city")
    trimmed["datasets"] = datasets.filter(pc.not_equal(datasets.column("key"), middle)).to_batches()
    middle_items = [k for k in items.column("key").to_pylist() if k.split("#")[0] == middle]
    report = restore(platform, trimmed, rich)
    reasons = {i.key: i.reason for i in report.skipped}
    assert all(k in reasons for k in middle_items)  # its dataset is not in the version
    orphans = [k for k in reasons if k.startswith((dropped_item + "#", dropped_item + "!"))]
    assert orphans
    assert all("was not restored" in reasons[k] for k in orphans)
    new_datasets = [
        d for d in fake.datasets.values() if d["projectId"] == int(report.project.project_id)
    ]
    night = next(d for d in new_datasets if d["name"] == "night 🌙")
    assert night["parentId"] is None  # its parent is not in the version: put at the root


# --- resuming -------------------------------------------------------------------------------


def test_killed_by_a_failed_write_then_resumed(
    fake: FakeSupervisely, platform: SuperviselyPlatform, rich: RichProject, source: Tables
) -> None:
    store = MemoryStore()
    # An ambiguous write is retried (after reconciling) up to max_retries times; then it stops.
    fake.fail_next("figures.bulk.add", 500, times=4)
    fake.calls.clear()
    with pytest.raises(RestoreError) as info:
        restore(platform, source, rich, store=store)
    created = info.value.created_project
    assert info.value.progress["annotations"] == 0
    assert info.value.progress["items"] == 4

    report = restore(platform, source, rich, store=store)
    assert report.resumed
    assert report.project.project_id == created
    assert [m for m, _ in fake.calls].count("projects.add") == 1
    again = capture_tables(platform, created)
    assert fingerprint_multisets(again) == fingerprint_multisets(source)  # nothing twice
    assert report.created == {
        "users": 0,
        **{t: sum(c.values()) for t, c in fingerprint_multisets(source).items() if t != "project"},
    }


@pytest.mark.parametrize("kind", ["500", "slow", "drop"])
@pytest.mark.parametrize(
    "method", ["projects.add", "datasets.add", "images.bulk.add", "figures.bulk.add"]
)
def test_an_ambiguous_write_that_landed_is_not_repeated(  # noqa: PLR0917 - fixtures
    fake: FakeSupervisely,
    platform: SuperviselyPlatform,
    rich: RichProject,
    source: Tables,
    method: str,
    kind: str,
) -> None:
    """The write landed, its answer was lost: one run reconciles it and sends only the rest."""
    fake.fail_next(method, kind, landed=True)
    fake.fail_next("tags.entities.bulk.add", kind, landed=True)
    report = restore(platform, source, rich)
    assert not report.resumed
    assert project_names(fake).count("Проект λ — rich 🚀, from ver. 3") == 1
    again = capture_tables(platform, report.project.project_id)
    assert fingerprint_multisets(again) == fingerprint_multisets(source)  # nothing twice


def test_an_ambiguous_write_retries_within_the_budget(
    fake: FakeSupervisely, rich: RichProject, source: Tables
) -> None:
    platform = SuperviselyPlatform(
        "http://sly.test",
        fake.token,
        settings=RequestSettings(backoff_jitter=0, max_retries=1),
        transport=fake.transport(),
        sleep=lambda seconds: None,
    )
    fake.fail_next("images.bulk.add", 502, times=2)
    with pytest.raises(RestoreError, match=r"images\.bulk\.add answered 502"):
        restore(platform, source, rich)
    assert [m for m, _ in fake.fault_log].count("images.bulk.add") == 2


@pytest.mark.parametrize(
    "fragment",
    [
        "project.json",  # the project was created, its id never recorded
        "steps/a000002-dataset",
        "steps/b00000001-1-items",
        "steps/b00000001-2-annotations",
        "steps/b00000001-3-tags",
        "steps/b00000004-2-annotations",
        "report.json",
    ],
)
def test_killed_after_a_write_landed_then_resumed(
    fake: FakeSupervisely,
    platform: SuperviselyPlatform,
    rich: RichProject,
    source: Tables,
    fragment: str,
) -> None:
    """The platform did the work, the journal never heard of it: resume adopts, not repeats."""
    store = KillingStore(fragment)
    if fragment == "restore.json":
        store.killed = True  # let the first write (the intent) through, kill the update
        original = store.put_if_match

        def kill_update(key: str, data: bytes, etag: str) -> str:
            if json.loads(data).get("project_id") and not getattr(kill_update, "done", False):
                kill_update.done = True  # type: ignore[attr-defined]
                raise Killed(key)
            return original(key, data, etag)

        store.put_if_match = kill_update  # type: ignore[method-assign]
    with pytest.raises(Killed):
        restore(platform, source, rich, store=store)
    report = restore(platform, source, rich, store=store)
    assert report.resumed
    assert project_names(fake).count("Проект λ — rich 🚀, from ver. 3") == 1
    assert not any(name.endswith("_001") for name in project_names(fake))
    again = capture_tables(platform, report.project.project_id)
    assert fingerprint_multisets(again) == fingerprint_multisets(source)


def test_a_finished_restore_is_not_repeated(
    fake: FakeSupervisely, platform: SuperviselyPlatform, rich: RichProject, source: Tables
) -> None:
    store = MemoryStore()
    first = restore(platform, source, rich, store=store)
    fake.calls.clear()
    second = restore(platform, source, rich, store=store)
    assert fake.calls == []
    assert second.project == first.project
    assert second.created == first.created
    assert second.resumed


def test_a_journal_belongs_to_one_restore(
    platform: SuperviselyPlatform, rich: RichProject, source: Tables
) -> None:
    store = MemoryStore()
    prefix = journal_prefix("supervisely/sly.test%3A80/1", "run/" + secrets.token_hex(4))
    assert prefix.startswith("supervisely/sly.test%3A80/1/restores/run%2F")
    restore(platform, source, rich, store=store, journal=prefix, batch_size=50)
    store.delete(prefix + "/report.json")
    with pytest.raises(ConfigurationError, match="belongs to"):
        restore(platform, source, rich, store=store, journal=prefix, version_number=4)


def test_round_trip_over_loopback(fake: FakeSupervisely, rich: RichProject) -> None:
    """The same round trip over real sockets (JSON and multipart bodies on the wire)."""
    with fake.serve() as url:
        platform = SuperviselyPlatform(
            url, fake.token, settings=RequestSettings(backoff_jitter=0), batch_size=8
        )
        source = capture_tables(platform, str(rich.project_id))
        report = restore(platform, source, rich, batch_size=8)
        again = capture_tables(platform, report.project.project_id)
        platform.close()
    assert fingerprint_multisets(again) == fingerprint_multisets(source)
    assert "figures.bulk.upload.geometry" in fake.methods_called()


# --- the driver on its own: any platform, no datasets ----------------------------------------


class MemoryTarget:
    """A minimal platform without datasets (as Label Studio is): items carry annotations."""

    name = "memory"
    instance = "memory:0"
    restore_ignores: tuple[str, ...] = ()
    write_retries = 0

    def __init__(self) -> None:
        self.projects: dict[str, dict[str, Any]] = {}
        self.rows: dict[str, list[tuple[str, str]]] = {"items": [], "annotations": [], "tags": []}
        self.fail_keys: set[str] = set()

    def get_project(self, project_id: str) -> Any:
        p = self.projects[project_id]
        return ProjectInfo(
            "memory", self.instance, project_id, p["name"], "tasks", workspace_id="w"
        )

    def default_workspace(self, source: Row) -> str:
        return "w"

    def free_project_name(self, workspace_id: str, wanted: str) -> str:
        return wanted

    def find_project_by_name(self, workspace_id: str, name: str) -> Any:
        found = [pid for pid, p in self.projects.items() if p["name"] == name]
        return self.get_project(found[0]) if found else None

    def create_project(self, source: Row, *, workspace_id: str, name: str, description: str) -> Any:
        pid = str(len(self.projects) + 1)
        self.projects[pid] = {"name": name, "description": description}
        return self.get_project(pid)

    def prepare_project(self, project_id: str, source: Row) -> None:
        pass

    def add_dataset(self, project_id: str, row: Row, parent_id: str | None) -> str:
        raise AssertionError("no datasets here")

    def find_dataset(self, project_id: str, row: Row, parent_id: str | None) -> str | None:
        raise AssertionError("no datasets here")

    def missing_items(self, project_id: str, rows: Any) -> dict[str, str]:
        return {}

    def _add(self, table: str, rows: Any) -> dict[str, str]:
        bad = [r["key"] for r in rows if r["key"] in self.fail_keys]
        if bad:
            raise RequestRejected(f"rejected {bad}", platform="memory")
        out = {}
        for row in rows:
            new_id = f"{table[0]}{len(self.rows[table]) + 1}"
            self.rows[table].append((row["key"], new_id))
            out[row["key"]] = new_id
        return out

    def add_items(self, project_id: str, dataset_id: str | None, rows: Any) -> dict[str, str]:
        assert dataset_id is None
        return self._add("items", rows)

    def add_annotations(
        self, project_id: str, dataset_id: str | None, rows: Any, items: Any
    ) -> dict[str, str]:
        assert all(r["item_key"] in items for r in rows)
        return self._add("annotations", rows)

    def add_tags(self, project_id: str, rows: Any, owners: Any) -> dict[str, str]:
        return self._add("tags", rows)

    def already_restored(
        self, project_id: str, table: str, dataset_id: str | None, rows: Any, owners: Any
    ) -> dict[str, str]:
        return {}

    def restore(
        self,
        tables: TableReader,
        request: RestoreRequest,
        journal: RestoreJournal,
        progress: RestoreProgress | None = None,
    ) -> RestoreReport:
        return restore_keyed(self, tables, request, journal, progress)


def _table(name: str, rows: list[dict[str, Any]]) -> list[pa.RecordBatch]:
    schema = schema_for(name)
    full = [
        {field: row.get(field) for field in schema.names} | {"fingerprint": "f", "raw": "{}"} | row
        for row in rows
    ]
    return [
        pa.RecordBatch.from_pylist(full[i : i + 3], schema=schema) for i in range(0, len(full), 3)
    ]


def test_driver_without_datasets_and_with_row_failures() -> None:
    tasks = [{"key": f"{n:06d}", "name": f"task {n}"} for n in range(1, 8)]
    annotations = [
        {"key": f"{n:06d}/{a}", "item_key": f"{n:06d}"} for n in range(1, 8) for a in (1, 2)
    ]
    annotations.append({"key": "999999/1", "item_key": "999999"})  # its task is not in the version
    tables = {
        "project": _table("project", [{"key": "project", "name": "labels", "description": None}]),
        "items": _table("items", tasks),
        "annotations": _table("annotations", annotations),
    }
    target = MemoryTarget()
    target.fail_keys = {"000004"}
    report = restore_version(
        target,  # type: ignore[arg-type]
        table_reader(tables),
        store=MemoryStore(),
        journal="memory/restores/1",
        origin=VersionOrigin(source_project_id="9", version_number=2),
        options=RestoreOptions(allow_failures=True, batch_size=3),
    )
    assert report.project.name == "labels, from ver. 2"
    assert [f.key for f in report.failures] == ["000004"]
    assert {s.key for s in report.skipped} == {"000004/1", "000004/2", "999999/1"}
    assert report.created == {"users": 0, "datasets": 0, "items": 6, "annotations": 12, "tags": 0}
    assert [k for k, _ in target.rows["items"]] == [t["key"] for t in tasks if t["key"] != "000004"]


# --- partial restore ------------------------------------------------------------------------


def rows_of(tables: Tables, table: str) -> list[dict[str, Any]]:
    return [row for batch in tables.get(table, []) for row in batch.to_pylist()]


def partial_source(
    source: Tables,
    *,
    datasets: tuple[str, ...] | None = None,
    classes: tuple[str, ...] | None = None,
) -> tuple[dict[str, dict[str, int]], dict[str, int]]:
    """What a partial restore keeps (fingerprint multisets) and leaves out (counts), worked out
    from the source rows by dataset path (``datasets`` are paths here)."""
    all_datasets = rows_of(source, "datasets")
    if datasets is None:
        restored = {d["key"] for d in all_datasets}
    else:
        restored = {
            d["key"]
            for d in all_datasets
            if any(d["path"] == p or d["path"].startswith(p + "/") for p in datasets)
        }
    restored_paths = {d["path"] for d in all_datasets if d["key"] in restored}
    created = {
        d["key"]
        for d in all_datasets
        if any(p == d["path"] or p.startswith(d["path"] + "/") for p in restored_paths)
    }
    items = {i["key"] for i in rows_of(source, "items") if i["dataset_key"] in restored}
    annotations = {
        a["key"]
        for a in rows_of(source, "annotations")
        if a["item_key"] in items and (classes is None or a["class_name"] in classes)
    }
    tags = {t["key"] for t in rows_of(source, "tags") if t["owner_key"] in items | annotations}
    kept = {"datasets": created, "items": items, "annotations": annotations, "tags": tags}
    multisets: dict[str, dict[str, int]] = {}
    left_out: dict[str, int] = {"users": 0}
    for table in source:
        if table == "users":  # not restored (see test_authors_are_captured_not_restored)
            continue
        rows = rows_of(source, table)
        keep = [r for r in rows if table not in kept or r["key"] in kept[table]]
        multisets[table] = dict(Counter(r["fingerprint"] for r in keep))
        if table in kept:
            left_out[table] = len(rows) - len(keep)
    return multisets, left_out


def new_datasets(fake: FakeSupervisely, report: RestoreReport) -> dict[str, dict[str, Any]]:
    pid = int(report.project.project_id)
    return {d["name"]: d for d in fake.datasets.values() if d["projectId"] == pid}


def test_partial_restore_of_one_nested_dataset(
    fake: FakeSupervisely, platform: SuperviselyPlatform, rich: RichProject, source: Tables
) -> None:
    report = restore(platform, source, rich, datasets=("train/city",))
    expected, left_out = partial_source(source, datasets=("train/city",))
    assert report.skipped == ()
    assert report.failures == ()
    assert report.filtered_out == left_out
    assert left_out == {
        "users": 0,
        "datasets": 3,
        "items": 20,
        "annotations": left_out["annotations"],
        "tags": left_out["tags"],
    }
    assert left_out["annotations"] > 0
    assert left_out["tags"] > 0
    assert report.created["datasets"] == 3
    assert report.created["items"] == 10
    assert report.summary()["filtered_out"] == left_out

    made = new_datasets(fake, report)
    assert set(made) == {"train", "city", "night 🌙"}
    assert made["train"]["parentId"] is None
    assert made["city"]["parentId"] == made["train"]["id"]
    assert made["night 🌙"]["parentId"] == made["city"]["id"]
    assert made["train"]["description"] == "training split"  # the ancestor as it was …
    assert not [i for i in fake.images.values() if i["datasetId"] == made["train"]["id"]]  # empty

    again = capture_tables(platform, report.project.project_id)
    assert fingerprint_multisets(again) == expected


def test_partial_restore_of_some_classes(
    fake: FakeSupervisely, platform: SuperviselyPlatform, rich: RichProject, source: Tables
) -> None:
    classes = ("cls rectangle ✓", "anything")
    report = restore(platform, source, rich, classes=classes)
    expected, left_out = partial_source(source, classes=classes)
    assert report.skipped == ()
    assert report.filtered_out == left_out
    assert (left_out["datasets"], left_out["items"]) == (0, 0)
    assert left_out["annotations"] > 0
    assert left_out["tags"] > 0  # figure tags of the other classes
    assert report.created["items"] == 30
    again = capture_tables(platform, report.project.project_id)
    assert {a["class_name"] for a in rows_of(again, "annotations")} == set(classes)
    assert fingerprint_multisets(again) == expected
    # every class is still defined, so the project row is the source's
    assert fingerprint_multisets(again)["project"] == fingerprint_multisets(source)["project"]


@pytest.mark.parametrize("parallel", [1, 3])
def test_partial_restore_of_datasets_and_classes(
    fake: FakeSupervisely,
    platform: SuperviselyPlatform,
    rich: RichProject,
    source: Tables,
    parallel: int,
) -> None:
    """By name ("val" and "テスト" are roots), with one class; in partitions too."""
    report = restore(
        platform,
        source,
        rich,
        datasets=("val", "テスト"),
        classes=("anything",),
        parallel=parallel,
    )
    expected, left_out = partial_source(source, datasets=("val", "テスト"), classes=("anything",))
    assert report.skipped == ()
    assert report.filtered_out == left_out
    assert left_out["datasets"] == 3
    assert left_out["items"] == 15
    assert set(new_datasets(fake, report)) == {"val", "rural", "テスト"}
    again = capture_tables(platform, report.project.project_id)
    assert {a["class_name"] for a in rows_of(again, "annotations")} == {"anything"}
    assert fingerprint_multisets(again) == expected


def test_partial_restore_rejects_unknown_names(
    fake: FakeSupervisely, platform: SuperviselyPlatform, rich: RichProject, source: Tables
) -> None:
    before = len(fake.projects)
    with pytest.raises(ConfigurationError) as info:
        restore(platform, source, rich, datasets=("train/city", "nope", "city/night 🌙"))
    message = str(info.value)
    assert "no dataset 'city/night 🌙', 'nope';" in message
    for path in ("'train'", "'train/city'", "'train/city/night 🌙'", "'val/rural'", "'テスト'"):
        assert path in message

    with pytest.raises(ConfigurationError) as info:
        restore(platform, source, rich, classes=("anything", "cls nope"))
    message = str(info.value)
    assert "no class 'cls nope';" in message
    assert "'anything'" in message
    assert "'cls rectangle ✓'" in message

    with pytest.raises(ConfigurationError, match="datasets is empty"):
        restore(platform, source, rich, datasets=())
    with pytest.raises(ConfigurationError, match="classes is empty"):
        restore(platform, source, rich, classes=())
    assert len(fake.projects) == before  # refused before anything was created


def test_partial_restore_refuses_an_ambiguous_dataset_name(
    fake: FakeSupervisely, platform: SuperviselyPlatform, rich: RichProject
) -> None:
    val = next(d for d in fake.datasets.values() if d["name"] == "val")
    fake.create_dataset(rich.project_id, "city", parent_id=val["id"])
    source = capture_tables(platform, str(rich.project_id))
    with pytest.raises(ConfigurationError, match="ambiguous") as info:
        restore(platform, source, rich, datasets=("city",))
    assert "'train/city'" in str(info.value)
    assert "'val/city'" in str(info.value)
    report = restore(platform, source, rich, datasets=("val/city",), journal="j/a")
    assert set(new_datasets(fake, report)) == {"val", "city"}
    assert report.created["items"] == 0


def test_partial_restore_prefers_a_path_to_a_name(
    fake: FakeSupervisely, platform: SuperviselyPlatform, rich: RichProject
) -> None:
    """A root dataset's path is its name; it wins over a nested dataset of that name."""
    fake.create_dataset(rich.project_id, "night 🌙")
    source = capture_tables(platform, str(rich.project_id))
    report = restore(platform, source, rich, datasets=("night 🌙",))
    assert list(new_datasets(fake, report)) == ["night 🌙"]
    assert new_datasets(fake, report)["night 🌙"]["parentId"] is None


def test_class_filter_needs_class_definitions() -> None:
    tables = {
        "project": _table("project", [{"key": "project", "name": "labels", "definitions": "{}"}]),
        "items": _table("items", [{"key": "000001", "name": "task"}]),
    }
    with pytest.raises(ConfigurationError, match="list no classes"):
        restore_version(
            MemoryTarget(),  # type: ignore[arg-type]
            table_reader(tables),
            store=MemoryStore(),
            journal="memory/restores/1",
            origin=VersionOrigin(source_project_id="9", version_number=1),
            options=RestoreOptions(classes=("cat",)),
        )


def test_a_resumed_restore_keeps_its_filters(
    fake: FakeSupervisely, platform: SuperviselyPlatform, rich: RichProject, source: Tables
) -> None:
    store = KillingStore("-2-annotations")
    with pytest.raises(Killed):
        restore(platform, source, rich, store=store, datasets=("city",), classes=("anything",))
    projects = len(fake.projects)
    for other in (
        {"datasets": ("val",), "classes": ("anything",)},
        {"datasets": ("city",)},
        {"datasets": ("city",), "classes": ("anything", "cls point ✓")},
        {},
    ):
        with pytest.raises(ConfigurationError, match="belongs to another restore") as info:
            restore(platform, source, rich, store=store, **other)
        assert "filters" in str(info.value)
    assert len(fake.projects) == projects

    # the same selection, spelled as a path: it resumes
    report = restore(
        platform, source, rich, store=store, datasets=("train/city",), classes=("anything",)
    )
    assert report.resumed
    assert len(fake.projects) == projects
    expected, left_out = partial_source(source, datasets=("train/city",), classes=("anything",))
    assert report.filtered_out == left_out
    again = capture_tables(platform, report.project.project_id)
    assert fingerprint_multisets(again) == expected

    # a finished restore answers only to its own filters
    assert restore(platform, source, rich, store=store, datasets=("city",), classes=("anything",))
    with pytest.raises(ConfigurationError, match="belongs to another restore"):
        restore(platform, source, rich, store=store, datasets=("val",))


def test_a_null_grouping_tag_is_kept(
    fake: FakeSupervisely, platform: SuperviselyPlatform, rich: RichProject
) -> None:
    """``groupImagesByTagId: null`` is a setting too (the SDK's own restore keeps it)."""
    fake.projects[rich.project_id]["settings"]["groupImagesByTagId"] = None
    source = capture_tables(platform, str(rich.project_id))
    report = restore(platform, source, rich)
    settings = fake.projects[int(report.project.project_id)]["settings"]
    assert "groupImagesByTagId" in settings
    assert settings["groupImagesByTagId"] is None
    again = capture_tables(platform, report.project.project_id)
    assert fingerprint_multisets(again)["project"] == fingerprint_multisets(source)["project"]


def test_authors_are_captured_not_restored() -> None:
    """Every figure's and tag's labeler is in the version; Supervisely's API has no way to set
    one, so the restored figures and tags belong to the restoring token's user."""
    fake = FakeSupervisely(default_per_page=6)
    rich = generate_rich_project(fake, labelers=True, images_per_dataset=2)
    platform = SuperviselyPlatform(
        "http://sly.test", fake.token, transport=fake.transport(), sleep=lambda seconds: None
    )
    source = capture_tables(platform, str(rich.project_id))
    report = restore(platform, source, rich)
    again = capture_tables(platform, report.project.project_id)
    logins = {row["login"] for batch in source["users"] for row in batch.to_pylist()}
    assert logins == {"anna.k", "Βασίλης", "李雷", "owner"}
    assert [row["login"] for batch in again["users"] for row in batch.to_pylist()] == ["owner"]
    assert report.created["users"] == 0
    assert fingerprint_multisets(again) == fingerprint_multisets(source)  # all but users
