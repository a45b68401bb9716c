"""Flow: a version after annotators changed a project (fired by ``labelvault.project.changed``).

Prefect's trigger (``threshold: 1, within: 30``) starts this flow on the first event of a burst
and drops the rest of the window. So the flow waits until the project has been quiet for
``quiet_seconds`` before capturing, and captures again if the project changed meanwhile: a burst
makes about one version, and the last edit of the burst is always in one.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.create_version import create_version
from labelvault.events import parse_resource_id


@flow(name="version_on_change")
def version_on_change(
    resource_id: str,
    storage: str = "default",
    quiet_seconds: float = 10.0,
    max_wait_seconds: float = 600.0,
) -> dict[str, Any]:
    """Capture the project named by the event's resource id
    (``labelvault.project.<connection>.<project_id>``)."""
    connection, project_id = parse_resource_id(resource_id)
    return create_version(
        project_id=project_id,
        connection=connection,
        storage=storage,
        title="on change",
        quiet_seconds=quiet_seconds,
        max_wait_seconds=max_wait_seconds,
    )
