"""Flow: what changed between two versions of a project."""

from __future__ import annotations

from typing import Annotated, Any

from prefect import flow
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run

from tasks.blocks import (
    load_connection,
    load_store,
    project_label,
)
from tasks.common import (
    FLOW_TIMEOUT_SECONDS,
    library_logs_in_run,
    project_key,
    run_tags,
    tag_this_run,
)
from tasks.forms import Connection, ProjectId, Store, titled
from tasks.versions import diff


def _run_name() -> str:
    parameters = flow_run.parameters
    new = parameters.get("new")
    return (
        f"diff {project_label(parameters)} "
        f"v{parameters.get('old')}..{'latest' if new is None else f'v{new}'}"
    )


@flow(
    name="diff_versions",
    flow_run_name=_run_name,
    timeout_seconds=FLOW_TIMEOUT_SECONDS,
    persist_result=True,
)
def diff_versions(
    project_id: ProjectId,
    old: Annotated[int, titled("From version")],
    new: Annotated[int | None, titled("To version")] = None,
    connection: Connection = "supervisely",
    storage: Store = "default",
) -> dict[str, Any]:
    """What changed from one version of a project to another; publishes a markdown artifact.

    Args:
        project_id: The project's id on the platform, e.g. 5007.
        old: The earlier version number.
        new: The later version number. Empty (None): the latest version.
        connection: The saved *Labelvault Platform Connection* block (pick one, or type
            its name) the project was
            captured from (Blocks page), e.g. `supervisely`.
        storage: A saved *Labelvault Store* block (pick one, or type its
            name): where versions are kept.
    """
    with library_logs_in_run():
        project = project_key(project_id)
        source = load_connection(connection)
        store = load_store(storage)
        tag_this_run(*run_tags(source.platform, project))
        result = diff(source, store, project, old, new)
        create_markdown_artifact(
            markdown=result["markdown"],
            description=f"{source.platform} project {project}: version {result['old']} to "
            f"version {result['new']}",
        )
        return result
