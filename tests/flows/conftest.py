"""Flow tests: one Prefect test harness for the package, the fake Supervisely server per test."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prefect.testing.utilities import prefect_test_harness
from pydantic import SecretStr

from labelvault.catalog import Catalog
from labelvault.models import ProjectRef
from labelvault.platforms.base import instance_from_url
from labelvault.storage import LocalStore
from tasks.blocks import PlatformConnectionBlock, StoreBlock
from tests.fakes.supervisely import FakeSupervisely, RichProject, generate_rich_project


@pytest.fixture(scope="package")
def prefect_harness() -> Iterator[None]:
    """A temporary Prefect server and database for the flow tests.

    Package-scoped, not session-scoped: Prefect's client threads stop with it, so they do not
    run (and draw from ``random``) during other packages' property tests."""
    with prefect_test_harness(server_startup_timeout=120):
        yield


@dataclass
class FlowWorld:
    """What a flow test runs against: a served fake Supervisely, its project, a local store."""

    fake: FakeSupervisely
    rich: RichProject
    url: str
    store: LocalStore

    @property
    def project_id(self) -> str:
        return str(self.rich.project_id)

    def ref(self, project_id: str | int | None = None) -> ProjectRef:
        return ProjectRef(
            platform="supervisely",
            instance=instance_from_url(self.url),
            project_id=str(project_id or self.rich.project_id),
        )

    def catalog(self) -> Catalog:
        return Catalog(self.store)


@pytest.fixture
def world(prefect_harness: None, tmp_path: Path) -> Iterator[FlowWorld]:
    """Blocks named as the deployments expect them, pointing at this test's servers."""
    fake = FakeSupervisely(seed=7)
    rich = generate_rich_project(fake, images_per_dataset=4)
    store_path = tmp_path / "store"
    with fake.serve() as url:
        PlatformConnectionBlock(
            platform="supervisely", server_url=url, token=SecretStr(fake.token)
        ).save("supervisely", overwrite=True)
        StoreBlock(url=str(store_path)).save("default", overwrite=True)
        yield FlowWorld(fake=fake, rich=rich, url=url, store=LocalStore(store_path))
