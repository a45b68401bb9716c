"""Flow: a version after annotators changed a project (fired by ``labelvault.project.changed``).

Prefect's trigger (``threshold: 1, within: 30``) starts this flow on the first event of a burst
and drops the rest of the window. So the flow waits until the project has been quiet for
``quiet_seconds`` before capturing (holding no slot while it waits), and captures again if the
project changed meanwhile: a burst makes about one version, and the last edit of the burst is
always in one.
"""

from __future__ import annotations

from typing import Annotated, Any

from prefect import flow
from prefect.runtime import flow_run

from flows.create_version import create_version
from labelvault.errors import ConfigurationError
from labelvault.events import parse_resource_id
from tasks.common import FLOW_TIMEOUT_SECONDS
from tasks.forms import Store, titled


def _run_name() -> str:
    resource = str(flow_run.parameters.get("resource_id", ""))
    try:
        connection, project_id = parse_resource_id(resource)
    except ConfigurationError:
        return f"on change {resource}"
    return f"on change {connection}/{project_id}"


@flow(
    name="version_on_change",
    flow_run_name=_run_name,
    timeout_seconds=FLOW_TIMEOUT_SECONDS,
    persist_result=True,
)
def version_on_change(
    resource_id: Annotated[str, titled("Changed project (event resource)")],
    storage: Store = "default",
    quiet_seconds: Annotated[float, titled("Quiet period (seconds)")] = 10.0,
    max_wait_seconds: Annotated[float, titled("Longest quiet wait (seconds)")] = 600.0,
) -> dict[str, Any]:
    """Capture the project an event names, once it has been quiet.

    Args:
        resource_id: The event's resource id, `labelvault.project.<connection>.<project_id>`
            (the trigger fills it in; the webhook bridge makes it).
        storage: A saved *Labelvault Store* block (pick one, or type its
            name): where versions are kept.
        quiet_seconds: Capture once the project has not changed for this many seconds.
        max_wait_seconds: Stop waiting for a quiet project after this many seconds and
            capture anyway.
    """
    connection, project_id = parse_resource_id(resource_id)
    return create_version(
        project_id=project_id,
        connection=connection,
        storage=storage,
        title="on change",
        quiet_seconds=quiet_seconds,
        max_wait_seconds=max_wait_seconds,
    )
