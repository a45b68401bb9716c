"""Previews on the fake Supervisely server: reuse, overwrite, a preview deleted by hand,
retention, the content of a preview, the bridge's view of it, and bad input."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from labelvault.errors import (
    AuthenticationError,
    ConfigurationError,
    UnsupportedProject,
    VersionNotFound,
)
from labelvault.models import ProjectRef
from labelvault.platforms.base import TablePage
from labelvault.platforms.supervisely import SuperviselyPlatform
from labelvault.preview import (
    PREVIEW_WORKSPACE,
    is_preview_title,
    preview_title,
    preview_version,
    version_summary,
)
from labelvault.retention import RetentionPolicy
from labelvault.snapshot.schema import TABLES
from labelvault.storage.memory import MemoryStore
from labelvault.vault import Vault
from tests.fakes.supervisely import FakeSupervisely, RichProject, generate_rich_project


def connect(fake: FakeSupervisely) -> SuperviselyPlatform:
    return fake.platform(batch_size=4)


@pytest.fixture
def fake() -> FakeSupervisely:
    return FakeSupervisely(default_per_page=6)


@pytest.fixture
def rich(fake: FakeSupervisely) -> RichProject:
    return generate_rich_project(fake, images_per_dataset=3)


@pytest.fixture
def platform(fake: FakeSupervisely) -> Iterator[SuperviselyPlatform]:
    with connect(fake) as opened:
        yield opened


@pytest.fixture
def vault() -> Vault:
    return Vault(MemoryStore("previews"))


@pytest.fixture
def project(
    vault: Vault, fake: FakeSupervisely, platform: SuperviselyPlatform, rich: RichProject
) -> ProjectRef:
    """The rich project with two versions (one image renamed between them)."""
    first = vault.capture(platform, str(rich.project_id), title="first")
    image = fake.images[rich.hash_images[0]]
    image["name"] = "renamed-" + str(image["name"])
    fake.touch_project(rich.project_id)
    second = vault.capture(platform, str(rich.project_id), title="second")
    assert (first.version.number, second.version.number) == (1, 2)
    return first.version.project


def fingerprints(batches: Iterator[pa.RecordBatch]) -> Counter[str]:
    return Counter(v for b in batches for v in b.column("fingerprint").to_pylist())


def previews_in_hidden_workspace(fake: FakeSupervisely) -> list[int]:
    hidden = [w["id"] for w in fake.workspaces.values() if w["name"] == PREVIEW_WORKSPACE]
    return sorted(p["id"] for p in fake.projects.values() if p["workspaceId"] in hidden)


def test_preview_twice_returns_the_same_project(
    vault: Vault, fake: FakeSupervisely, platform: SuperviselyPlatform, project: ProjectRef
) -> None:
    first = preview_version(vault, platform, project, 1)
    assert first.created
    made = fake.projects[int(first.project.project_id)]
    workspace = fake.workspaces[made["workspaceId"]]
    assert workspace["name"] == PREVIEW_WORKSPACE
    assert workspace["teamId"] == fake.projects[int(project.project_id)]["teamId"]
    assert workspace["id"] in fake.hidden_workspaces
    assert made["name"].startswith("[preview] ")
    assert made["name"].endswith(" v1")
    assert "preview of version 1" in made["description"]
    assert vault.catalog.preview(project, 1) == first.link
    assert vault.catalog.preview(project, 2) is None

    calls = len(fake.calls)
    again = preview_version(vault, platform, project, 1)
    assert not again.created
    assert again.project.project_id == first.project.project_id
    assert again.link == first.link
    assert "projects.add" not in [method for method, _ in fake.calls[calls:]]
    assert previews_in_hidden_workspace(fake) == [int(first.project.project_id)]

    # A preview of another version shares the one hidden workspace.
    other = preview_version(vault, platform, project, 2)
    assert other.project.workspace_id == first.project.workspace_id
    assert len([w for w in fake.workspaces.values() if w["name"] == PREVIEW_WORKSPACE]) == 1


def test_overwrite_makes_a_new_preview_and_removes_the_old_one(
    vault: Vault, fake: FakeSupervisely, platform: SuperviselyPlatform, project: ProjectRef
) -> None:
    old = preview_version(vault, platform, project, 2)
    new = preview_version(vault, platform, project, 2, overwrite=True)
    assert new.created
    assert new.replaced == old.project.project_id != new.project.project_id
    assert int(old.project.project_id) not in fake.projects
    assert previews_in_hidden_workspace(fake) == [int(new.project.project_id)]
    assert vault.catalog.preview(project, 2) == new.link
    assert new.link.generation == old.link.generation + 1
    assert is_preview_title(new.project.name)


def test_a_preview_deleted_by_hand_is_made_again(
    vault: Vault, fake: FakeSupervisely, platform: SuperviselyPlatform, project: ProjectRef
) -> None:
    old = preview_version(vault, platform, project, 1)
    platform.delete_project(old.project.project_id)  # as a user would, in the UI
    assert int(old.project.project_id) not in fake.projects
    again = preview_version(vault, platform, project, 1)
    assert again.created
    assert again.project.project_id != old.project.project_id
    assert again.replaced == old.project.project_id
    assert vault.catalog.preview(project, 1) == again.link
    assert int(again.project.project_id) in fake.projects


def test_the_preview_has_the_content_of_its_version(
    vault: Vault, platform: SuperviselyPlatform, project: ProjectRef
) -> None:
    """Capturing the preview gives the version's rows. The project row's fingerprint still
    covers the project's name and description (a preview has its own), so every table but
    ``project`` is compared by fingerprint; the content hashes match once that row leaves
    them out."""
    result = preview_version(vault, platform, project, 1)
    elsewhere = Vault(MemoryStore("preview-capture"))
    captured = elsewhere.capture(platform, result.project.project_id).version
    version = vault.version(project, 1)
    assert captured.stats == version.stats
    mine, theirs = vault.reader(project, 1), elsewhere.reader(captured.project, 1)
    compared = [t for t in TABLES if t != "project"]
    for table in compared:
        assert fingerprints(theirs.iter_batches(table)) == fingerprints(mine.iter_batches(table))
    assert fingerprints(mine.iter_batches("items"))  # something was compared
    # version 1 is not version 2: the renamed image tells them apart
    assert fingerprints(vault.reader(project, 2).iter_batches("items")) != fingerprints(
        theirs.iter_batches("items")
    )
    same_project_row = fingerprints(theirs.iter_batches("project")) == fingerprints(
        mine.iter_batches("project")
    )
    assert same_project_row == (captured.content_hash == version.content_hash)


def test_expiring_a_previewed_version_deletes_its_preview(
    vault: Vault, fake: FakeSupervisely, platform: SuperviselyPlatform, project: ProjectRef
) -> None:
    old = preview_version(vault, platform, project, 1)
    kept = preview_version(vault, platform, project, 2)
    policy = RetentionPolicy(keep_last=1, keep_tagged=False)
    dry = vault.expire(project, policy)
    assert dry.previews == {1: old.link}
    assert dry.summary()["previews_deleted"] == {1: old.project.project_id}
    assert int(old.project.project_id) in fake.projects  # a dry run deletes nothing

    with pytest.raises(ConfigurationError, match=r"version 1 .* has a preview") as refused:
        vault.expire(project, policy, dry_run=False)
    assert "nothing was deleted" in refused.value.message
    assert [v.number for v in vault.catalog.list(project)] == [1, 2]

    deleted: list[str] = []

    def drop(link: object) -> None:
        deleted.append(getattr(link, "project_id", ""))
        platform.delete_project(getattr(link, "project_id", ""))

    report = vault.expire(project, policy, dry_run=False, delete_preview=drop)
    assert report.versions_deleted == (1,)
    assert deleted == [old.project.project_id]
    assert int(old.project.project_id) not in fake.projects
    assert int(kept.project.project_id) in fake.projects
    assert previews_in_hidden_workspace(fake) == [int(kept.project.project_id)]


def test_a_preview_is_no_project_of_its_own_in_the_store(
    vault: Vault, fake: FakeSupervisely, platform: SuperviselyPlatform, project: ProjectRef
) -> None:
    result = preview_version(vault, platform, project, 1)
    assert vault.projects(project.platform, project.instance) == [project]
    assert is_preview_title(result.project.name)
    assert not is_preview_title(fake.projects[int(project.project_id)]["name"])


def test_bad_input_gets_one_clear_line(
    vault: Vault, fake: FakeSupervisely, platform: SuperviselyPlatform, project: ProjectRef
) -> None:
    with pytest.raises(VersionNotFound, match="has no version 7") as missing:
        preview_version(vault, platform, project, 7)
    assert "\n" not in missing.value.message

    fake.fail_next(
        "workspaces.add",
        403,
        body={"error": "Permission denied", "details": {"message": "not a team admin"}},
    )
    with pytest.raises(AuthenticationError) as denied:
        preview_version(vault, platform, project, 1)
    message = denied.value.message
    assert "\n" not in message
    assert fake.token not in message
    assert f"may not create the previews workspace {PREVIEW_WORKSPACE!r}" in message
    assert "ask a team admin" in message
    assert vault.catalog.preview(project, 1) is None
    assert previews_in_hidden_workspace(fake) == []

    elsewhere = ProjectRef(platform="supervisely", instance="other.test:443", project_id="1")
    with pytest.raises(ConfigurationError, match="on the version's own server"):
        preview_version(vault, platform, elsewhere, 1)


class VideoPlatform(SuperviselyPlatform):
    """Says its images project is a videos project (the capture cannot make one yet)."""

    def iter_pages(self, project_id: str) -> Iterator[TablePage]:
        for page in super().iter_pages(project_id):
            if page.table != "project":
                yield page
                continue
            kinds = pa.array(["videos"] * page.batch.num_rows, pa.string())
            index = page.batch.schema.get_field_index("kind")
            yield TablePage(page.table, page.batch.set_column(index, "kind", kinds))


def test_a_project_type_the_platform_cannot_preview(
    vault: Vault, fake: FakeSupervisely, rich: RichProject
) -> None:
    with VideoPlatform(
        "http://sly.test", fake.token, transport=fake.transport(), sleep=lambda s: None
    ) as platform:
        project = vault.capture(platform, str(rich.project_id)).version.project
        kinds = vault.query(project, "SELECT kind FROM project")["kind"]
        assert pc.all(pc.equal(kinds, "videos")).as_py()
        before = len(fake.projects)
        with pytest.raises(UnsupportedProject) as refused:
            preview_version(vault, platform, project, 1)
    message = refused.value.message
    assert "is a 'videos' project" in message
    assert "images projects only" in message
    assert "\n" not in message
    assert len(fake.projects) == before


def test_titles_fit_label_studio() -> None:
    long = preview_title("x" * 80, 12345)
    assert len(long) == 50
    assert long.startswith("[preview] xxx")
    assert long.endswith("… v12345")
    assert preview_title("cats", 3) == "[preview] cats v3"
    assert is_preview_title("[preview] cats v3_001")
    assert not is_preview_title("cats v3")
    assert not is_preview_title("[preview] notes")


def test_summary_counts_datasets_classes_items_and_the_diff(
    vault: Vault, project: ProjectRef
) -> None:
    first = version_summary(vault, project, 1)
    assert first.previous is None
    assert first.diff is None
    assert "nothing to compare with" in first.to_markdown()
    summary = version_summary(vault, project, top=3)
    assert summary.version.number == 2
    assert summary.previous == 1
    assert sum(d["items"] for d in summary.datasets) == summary.rows["items"]
    assert sum(summary.classes.values()) == summary.rows["annotations"]
    counts = [i["annotations"] for i in summary.largest_items]
    assert len(counts) == 3
    assert counts == sorted(counts, reverse=True)
    assert summary.diff is not None
    assert summary.diff["items"]["changed"] == 1
    markdown = summary.to_markdown()
    for heading in ("## Datasets", "## Classes", "## Items with the most annotations"):
        assert heading in markdown
    assert "Changes against version 1" in markdown
    assert summary.to_json()["diff"]["items"]["changed"] == 1
