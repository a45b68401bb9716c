"""Flow: preview a version as a marked, linked project on its platform, and publish its
summary (rows, datasets, classes, largest items, changes) as a markdown artifact."""

from __future__ import annotations

from typing import Annotated, Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run

from tasks.artifacts import artifact_key
from tasks.blocks import (
    ConnectionChoice,
    StoreChoice,
    load_connection,
    load_store,
    project_label,
)
from tasks.common import (
    FLOW_TIMEOUT_SECONDS,
    library_logs_in_run,
    platform_tag,
    project_key,
    run_tags,
    tag_this_run,
)
from tasks.concurrency import project_slot
from tasks.forms import Connection, ProjectId, Store, VersionNumber, titled
from tasks.preview import preview, summarize


def _run_name() -> str:
    parameters = flow_run.parameters
    version = parameters.get("version")
    return f"preview {project_label(parameters)} {'latest' if version is None else f'v{version}'}"


@flow(
    name="preview_version",
    flow_run_name=_run_name,
    timeout_seconds=FLOW_TIMEOUT_SECONDS,
    persist_result=True,
)
def preview_version(
    project_id: ProjectId,
    version: VersionNumber = None,
    connection: Connection = "supervisely",
    storage: Store = "default",
    overwrite: Annotated[bool, titled("Replace an existing preview")] = False,
) -> dict[str, Any]:
    """Preview a version as a marked project on its platform, linked from the version, and
    publish its summary; the linked preview is reused unless ``overwrite`` is set.

    Args:
        project_id: The project's id on the platform, e.g. 5007.
        version: The version to preview. Empty (None): the latest version.
        connection: The saved *Labelvault Platform Connection* block (pick one, or type
            its name) the project was
            captured from (Blocks page), e.g. `supervisely`.
        storage: A saved *Labelvault Store* block (pick one, or type its
            name): where versions are kept.
        overwrite: Make a new preview even when the version has one (the old one is deleted).
    """
    with library_logs_in_run():
        return _preview(project_key(project_id), version, connection, storage, overwrite)


def _preview(
    project_id: str,
    version: int | None,
    connection: ConnectionChoice,
    storage: StoreChoice,
    overwrite: bool,
) -> dict[str, Any]:
    logger = get_run_logger()
    source = load_connection(connection)
    store = load_store(storage)
    tag_this_run(*run_tags(source.platform, project_id))
    with project_slot(source.platform, f"preview-{project_id}"):
        result = preview.with_options(tags={platform_tag(source.platform)})(
            source, store, project_id, version, overwrite=overwrite
        )
    summary = summarize(source, store, project_id, result["version"])
    logger.info(
        "version %s of %s: %s preview project %s",
        result["version"],
        project_id,
        "new" if result["created"] else "existing",
        result["preview_project_id"],
    )
    create_markdown_artifact(
        key=artifact_key("labelvault", source.platform, project_id, "preview"),
        markdown=summary["markdown"],
        description=f"Version {result['version']} of {source.platform} project {project_id}, "
        f"previewed as project {result['preview_project_id']}",
    )
    return result
