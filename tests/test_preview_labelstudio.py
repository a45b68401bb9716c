"""Previews on a real Label Studio server: a marked project, reused, overwritten, made again
after a deletion by hand, and deleted with its version by retention."""

from __future__ import annotations

import httpx
import pytest

from labelvault.errors import PlatformNotFound
from labelvault.preview import delete_preview, is_preview_title, preview_version
from labelvault.retention import RetentionPolicy
from labelvault.storage.memory import MemoryStore
from labelvault.vault import Vault
from tests.platforms.test_labelstudio import build_rich_project, capture, platform_for
from tests.servers.labelstudio import LabelStudio, ProjectFactory

pytestmark = pytest.mark.labelstudio


def test_preview_on_label_studio(
    labelstudio_server: LabelStudio,
    labelstudio_project: ProjectFactory,
    labelstudio_cleanup: list[int],
) -> None:
    rich = build_rich_project(labelstudio_server, labelstudio_project)
    vault = Vault(MemoryStore("ls-previews"))
    with platform_for(labelstudio_server) as ls:
        project = vault.capture(ls, rich.project_id, title="first").version.project
        first = preview_version(vault, ls, project, 1)
        labelstudio_cleanup.append(int(first.project.project_id))
        assert first.created
        assert first.project.name.startswith("[preview] ")
        assert first.project.name.endswith(" v1")
        assert len(first.project.name) <= 50
        assert is_preview_title(first.project.name)
        described = httpx.get(
            f"{labelstudio_server.base_url}/api/projects/{first.project.project_id}",
            headers={"Authorization": f"Token {labelstudio_server.token}"},
        ).json()["description"]
        assert "labelvault preview of version 1" in described

        again = preview_version(vault, ls, project, 1)
        assert not again.created
        assert again.project.project_id == first.project.project_id

        # the content is the version's (the project row keeps its own name and description)
        source, shown = capture(ls, rich.project_id), capture(ls, first.project.project_id)
        mine, theirs = source.fingerprints(), shown.fingerprints()
        assert {t: c for t, c in mine.items() if t != "project"} == {
            t: c for t, c in theirs.items() if t != "project"
        }
        assert sum(mine["items"].values()) == rich.tasks

        replaced = preview_version(vault, ls, project, 1, overwrite=True)
        labelstudio_cleanup.append(int(replaced.project.project_id))
        assert replaced.replaced == first.project.project_id
        with pytest.raises(PlatformNotFound):
            ls.get_project(first.project.project_id)

        ls.delete_project(replaced.project.project_id)  # by hand
        remade = preview_version(vault, ls, project, 1)
        labelstudio_cleanup.append(int(remade.project.project_id))
        assert remade.created
        assert remade.replaced == replaced.project.project_id

        # a second version, so that retention may expire the first and its preview
        httpx.post(
            f"{labelstudio_server.base_url}/api/projects/{rich.project_id}/import",
            headers={"Authorization": f"Token {labelstudio_server.token}"},
            json=[{"data": {"image": "http://example.invalid/img/99.jpg", "caption": "extra"}}],
        ).raise_for_status()
        second = vault.capture(ls, rich.project_id, title="second").version
        assert second.number == 2
        report = vault.expire(
            project,
            RetentionPolicy(keep_last=1, keep_tagged=False),
            dry_run=False,
            delete_preview=lambda link: delete_preview(ls, link),
        )
        assert report.versions_deleted == (1,)
        with pytest.raises(PlatformNotFound):
            ls.get_project(remade.project.project_id)
        assert report.previews == {1: remade.link}
