"""The flows under a Prefect test harness, against the fake Supervisely server and a local store."""

from __future__ import annotations

import secrets
from collections import Counter
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from pydantic import SecretStr

from flows.create_version import create_version
from flows.diff_versions import diff_versions
from flows.expire_versions import expire_versions
from flows.restore_version import restore_version
from labelvault.catalog import lease_key
from labelvault.errors import ConfigurationError, RequestRejected, RestoreError
from labelvault.models import RestoreOptions
from labelvault.platforms.supervisely import SuperviselyPlatform
from labelvault.storage.memory import MemoryStore
from labelvault.vault import Vault
from tasks.blocks import StoreBlock
from tests.flows.conftest import FlowWorld
from tests.servers.s3 import S3Server


def add_rectangle(world: FlowWorld, image_id: int | None = None) -> None:
    """An annotator draws one more box; the platform's updatedAt moves."""
    fake, pid = world.fake, world.rich.project_id
    [box] = [c for c in fake.metas[pid]["classes"] if c["shape"] == "rectangle"]
    geometry = {"points": {"exterior": [[10.25, 20.5], [110.75, 220.125]], "interior": []}}
    fake.create_figure(image_id or world.rich.hash_images[0], box["id"], "rectangle", geometry)
    fake.touch_project(pid)


def project_names(world: FlowWorld) -> list[str]:
    return [project["name"] for project in world.fake.projects.values()]


def test_create_restore_diff_expire(world: FlowWorld) -> None:
    first = create_version(project_id=world.project_id, title="first")
    assert first["created"] is True
    assert first["version"] == 1
    assert first["rows"]["annotations"] > 0

    again = create_version(project_id=world.project_id)
    assert again["created"] is False
    assert again["version"] == 1

    add_rectangle(world)
    second = create_version(project_id=world.project_id, tags=["reviewed"])
    assert second["created"] is True
    assert second["version"] == 2
    assert second["bytes_written"] < first["bytes_written"]

    changes = diff_versions(project_id=world.project_id, old=1, new=2)
    assert changes["tables"]["annotations"]["added"] == 1
    items = changes["tables"]["items"]
    assert (items["added"], items["removed"], items["changed"]) == (0, 0, 0)
    assert "Changes from version 1 to version 2" in changes["markdown"]

    report = restore_version(project_id=world.project_id, version=2)
    assert report["version"] == 2
    assert report["failures"] == 0
    restored = report["project_id"]
    assert restored != world.project_id
    assert report["project_name"].endswith("from ver. 2")

    recaptured = create_version(project_id=str(restored))
    assert recaptured["created"] is True
    assert recaptured["content_hash"] == second["content_hash"]

    [expiry] = expire_versions(
        project_ids=[world.project_id],
        keep_last=1,
        keep_tagged=False,
        keep_younger_than_days=None,
        dry_run=False,
    )
    remaining = [v.number for v in world.catalog().list(world.ref())]
    assert remaining == [2]
    assert expiry["versions_deleted"] == [1]
    assert expiry["objects_deleted"] > 0


def test_failing_page_leaves_no_version_and_no_reservation(world: FlowWorld) -> None:
    world.fake.fail_next("figures.list", 400, body={"error": "bad request", "details": {}})
    state = create_version(project_id=world.project_id, return_state=True)
    assert state.is_failed()
    with pytest.raises(RequestRejected):
        state.result()
    catalog = world.catalog()
    assert catalog.list(world.ref()) == []
    assert not world.store.exists(lease_key(world.ref()))
    assert list(world.store.list(f"{world.ref().prefix}/manifests/")) == []


def test_retried_restore_resumes_without_duplicates(world: FlowWorld) -> None:
    create_version(project_id=world.project_id)
    images_before = len(world.fake.images)
    world.fake.fail_next("figures.bulk.add", 400, body={"error": "rejected", "details": {}})
    failed = restore_version(project_id=world.project_id, restore_id="run-1", return_state=True)
    assert failed.is_failed()
    with pytest.raises(RestoreError, match="resume"):
        failed.result()
    assert sum(name.endswith("from ver. 1") for name in project_names(world)) == 1

    report: dict[str, Any] = restore_version(project_id=world.project_id, restore_id="run-1")
    assert report["resumed"] is True
    assert sum(name.endswith("from ver. 1") for name in project_names(world)) == 1
    source_images = sum(
        1 for i in world.fake.images.values() if i["projectId"] == world.rich.project_id
    )
    restored_images = sum(
        1 for i in world.fake.images.values() if str(i["projectId"]) == str(report["project_id"])
    )
    assert restored_images == source_images
    assert len(world.fake.images) == images_before + source_images


def test_partial_restore_by_class(world: FlowWorld) -> None:
    create_version(project_id=world.project_id)
    pid = world.rich.project_id
    [box] = [c for c in world.fake.metas[pid]["classes"] if c["shape"] == "rectangle"]
    source_boxes = sum(
        1
        for figure in world.fake.figures.values()
        if figure["classId"] == box["id"]
        and world.fake.images[figure["entityId"]]["projectId"] == pid
    )
    state = restore_version(
        project_id=world.project_id,
        options=RestoreOptions(classes=(box["title"],)),
        return_state=True,
    )
    report = state.result()
    assert report["created"]["annotations"] == source_boxes > 0
    assert report["filtered_out"]["annotations"] > 0
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            flow_run_filter=FlowRunFilter(
                id=FlowRunFilterId(any_=[state.state_details.flow_run_id])
            )
        )
    kinds = {artifact.type: artifact for artifact in artifacts}
    assert kinds["progress"].data == 100.0
    assert "Restored version 1" in str(kinds["markdown"].data)


def _task_runs(flow_run_id: Any) -> list[Any]:
    with get_client(sync_client=True) as client:
        runs: list[Any] = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )
    return runs


def _task_run_names(flow_run_id: Any) -> list[str]:
    return sorted(run.name for run in _task_runs(flow_run_id))


def test_create_in_partitions_shows_its_stages_and_is_the_serial_version(
    world: FlowWorld,
) -> None:
    platform = SuperviselyPlatform(world.url, world.fake.token)
    with platform, Vault(MemoryStore()) as serial:
        expected = serial.capture(platform, world.project_id)
        plan = platform.capture_plan(world.project_id)

    state = create_version(project_id=world.project_id, partitions=3, return_state=True)
    summary = state.result()
    assert summary["created"] is True
    assert summary["content_hash"] == expected.version.content_hash
    assert summary["rows"] == expected.rows

    names = _task_run_names(state.state_details.flow_run_id)
    captured = [name for name in names if name.startswith("capture ")]
    assert sorted(captured) == sorted(f"capture {partition.label}" for partition in plan)
    assert any(name.startswith("plan-capture") for name in names)
    assert any(name.startswith("commit-version") for name in names)

    again = create_version(project_id=world.project_id, partitions=3)
    assert again["created"] is False
    assert again["version"] == 1

    add_rectangle(world)
    edited = create_version(project_id=world.project_id, partitions=3)
    assert edited["created"] is True
    catalog = world.catalog()
    first, second = (catalog.manifest(version) for version in catalog.list(world.ref()))
    annotations = second.table("annotations")
    assert annotations.has_delta, "the partitions stored what changed, not their datasets whole"
    assert annotations.chunks == first.table("annotations").chunks
    assert sum(chunk.rows for chunk in annotations.delta) == 1


def test_a_failed_partition_fails_the_run_and_leaves_no_version(world: FlowWorld) -> None:
    world.fake.fail_next("images.list", 400, body={"error": "bad request", "details": {}})
    state = create_version(project_id=world.project_id, partitions=2, return_state=True)
    assert state.is_failed()
    with pytest.raises(RequestRejected):
        state.result()
    assert world.catalog().list(world.ref()) == []
    assert not world.store.exists(lease_key(world.ref()))
    assert list(world.store.list(f"{world.ref().prefix}/manifests/")) == []


def test_a_retried_run_captures_only_the_partitions_it_lacks(world: FlowWorld) -> None:
    """The first attempt loses one partition for good; the run's retry reuses the others."""
    platform = SuperviselyPlatform(world.url, world.fake.token)
    with platform, Vault(MemoryStore()) as serial:
        expected = serial.capture(platform, world.project_id).version.content_hash
    datasets = set(world.rich.dataset_ids)
    world.fake.calls.clear()
    world.fake.fail_next("images.list", 400, body={"error": "bad request", "details": {}})

    retried = create_version.with_options(retries=1, retry_delay_seconds=0)
    state = retried(project_id=world.project_id, partitions=len(datasets) + 1, return_state=True)
    summary = state.result()
    assert summary["created"] is True
    assert summary["content_hash"] == expected

    listed = Counter(
        body["datasetId"] for method, body in world.fake.calls if method == "images.list"
    )
    assert [method for method, _ in world.fake.fault_log] == ["images.list"]
    # every dataset was listed once over both attempts (the failed listing answered nothing):
    # the retry captured only the partition that had failed
    assert listed == dict.fromkeys(datasets, 1)


@pytest.mark.timeout(600)
def test_partitions_on_a_local_dask_cluster_give_the_serial_version(world: FlowWorld) -> None:
    """Two Dask worker processes capture the partitions: they get settings, not clients."""
    platform = SuperviselyPlatform(world.url, world.fake.token)
    with platform, Vault(MemoryStore()) as serial:
        expected = serial.capture(platform, world.project_id).version.content_hash
    summary = create_version(project_id=world.project_id, partitions=2, dask_cluster="local")
    assert summary["created"] is True
    assert summary["content_hash"] == expected


def test_a_dask_cluster_that_is_not_an_address_is_refused_in_one_line(world: FlowWorld) -> None:
    state = create_version(
        project_id=world.project_id, partitions=2, dask_cluster="my-cluster", return_state=True
    )
    assert state.is_failed()
    with pytest.raises(ConfigurationError, match="is not an address") as raised:
        state.result()
    assert "\n" not in str(raised.value)
    assert world.catalog().list(world.ref()) == []
    assert not world.store.exists(lease_key(world.ref()))


@pytest.mark.s3
@pytest.mark.timeout(600)
def test_serial_threaded_and_dask_captures_on_s3_give_one_content_hash(
    world: FlowWorld, s3_server: S3Server
) -> None:
    hashes = {}
    for name, options in {
        "serial": {},
        "threads": {"partitions": 3},
        "dask": {"partitions": 2, "dask_cluster": "local"},
    }.items():
        StoreBlock(
            url=f"s3://{s3_server.bucket}/flows-{name}-{secrets.token_hex(4)}",
            s3_endpoint_url=s3_server.endpoint,
            s3_region=s3_server.region,
            s3_access_key=s3_server.access_key,
            s3_secret_key=SecretStr(s3_server.secret_key),
            s3_addressing_style="path",
        ).save(f"s3-{name}", overwrite=True)
        summary = create_version(project_id=world.project_id, storage=f"s3-{name}", **options)
        assert summary["created"] is True, name
        hashes[name] = summary["content_hash"]
    assert len(set(hashes.values())) == 1, hashes


def test_a_partition_that_fails_once_is_retried_alone(
    world: FlowWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A transient failure the HTTP layer does not absorb fails one partition task, which
    Prefect retries by itself; the other partitions run once."""
    monkeypatch.setenv("LABELVAULT_HTTP_MAX_RETRIES", "0")
    world.fake.fail_next("images.list", 503)
    state = create_version(project_id=world.project_id, partitions=2, return_state=True)
    assert state.result()["created"] is True
    assert [method for method, _ in world.fake.fault_log] == ["images.list"]
    runs = _task_runs(state.state_details.flow_run_id)
    partitions = [run for run in runs if run.name.startswith("capture ")]
    assert len(partitions) == len(world.rich.dataset_ids) + 1
    assert sorted(run.run_count for run in partitions) == [1] * len(world.rich.dataset_ids) + [2]


# --- a restore in partitions ----------------------------------------------------------------


def _restore_in_parts(world: FlowWorld, partitions: int, flow: Any = restore_version) -> Any:
    """A restore in ``partitions``, two items a batch (several partitions of this project)."""
    return flow(
        project_id=world.project_id,
        options=RestoreOptions(batch_size=2),
        partitions=partitions,
        return_state=True,
    )


def _restored_hash(world: FlowWorld, project_id: Any) -> str:
    summary = create_version(project_id=str(project_id))
    assert summary["created"] is True
    return str(summary["content_hash"])


def test_restore_in_partitions_shows_its_stages_and_equals_the_source(world: FlowWorld) -> None:
    version = create_version(project_id=world.project_id)
    state = _restore_in_parts(world, 3)
    report = state.result()
    assert report["failures"] == 0
    assert report["created"]["items"] == sum(
        1 for i in world.fake.images.values() if i["projectId"] == world.rich.project_id
    )
    names = _task_run_names(state.state_details.flow_run_id)
    parts = [name for name in names if name.startswith("restore part ")]
    assert len(parts) > 3
    assert any(name.startswith("plan-restore") for name in names)
    assert any(name.startswith("finish-restore") for name in names)
    assert _restored_hash(world, report["project_id"]) == version["content_hash"]


def test_a_restore_partition_that_fails_once_is_retried_alone(
    world: FlowWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A transient failure the HTTP layer and the write retries do not absorb stops one
    partition, which Prefect retries by itself; it resumes its journal, creating nothing
    twice, and the other partitions run once."""
    version = create_version(project_id=world.project_id)
    monkeypatch.setenv("LABELVAULT_HTTP_MAX_RETRIES", "0")
    world.fake.fail_next("images.bulk.add", 503)
    state = _restore_in_parts(world, 2)
    report = state.result()
    assert [method for method, _ in world.fake.fault_log] == ["images.bulk.add"]
    runs = _task_runs(state.state_details.flow_run_id)
    parts = [run for run in runs if run.name.startswith("restore part ")]
    assert sorted(run.run_count for run in parts) == [1] * (len(parts) - 1) + [2]
    assert _restored_hash(world, report["project_id"]) == version["content_hash"]


def test_a_retried_restore_run_restores_only_the_partitions_it_lacks(world: FlowWorld) -> None:
    """The first attempt loses one partition for good; the run's retry takes the partitions
    that finished from the first attempt and restores the rest: every partition finished
    once, and every batch of items was sent once over both attempts."""
    version = create_version(project_id=world.project_id)
    serial = restore_version(
        project_id=world.project_id, options=RestoreOptions(batch_size=2, project_name="one")
    )
    batches = world.fake.methods_called().count("images.bulk.add")
    assert serial["created"]["items"] > 0
    world.fake.calls.clear()
    world.fake.fail_next("images.bulk.add", 400, body={"error": "rejected", "details": {}})
    retried = restore_version.with_options(retries=1, retry_delay_seconds=0)
    state = _restore_in_parts(world, 2, retried)
    report = state.result()
    assert [method for method, _ in world.fake.fault_log] == ["images.bulk.add"]
    assert world.fake.methods_called().count("images.bulk.add") == batches
    assert world.fake.methods_called().count("projects.add") == 1
    runs = _task_runs(state.state_details.flow_run_id)
    parts = [run for run in runs if run.name.startswith("restore part ")]
    completed = Counter(run.name for run in parts if run.state_name == "Completed")
    cached = [run.name for run in parts if run.state_name == "Cached"]
    failed = [run.name for run in parts if run.state_name == "Failed"]
    assert len(failed) == 1
    assert cached  # the retry took these from the first attempt
    assert set(completed.values()) == {1}  # no partition restored twice
    assert len(completed) == len({run.name for run in parts})
    assert _restored_hash(world, report["project_id"]) == version["content_hash"]


@pytest.mark.timeout(600)
def test_restore_partitions_on_a_local_dask_cluster_equal_the_source(world: FlowWorld) -> None:
    """Two Dask worker processes restore the partitions: they get settings, not clients."""
    version = create_version(project_id=world.project_id)
    report = restore_version(
        project_id=world.project_id,
        options=RestoreOptions(batch_size=2),
        partitions=2,
        dask_cluster="local",
    )
    assert _restored_hash(world, report["project_id"]) == version["content_hash"]
