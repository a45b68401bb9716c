"""The ``labelvault.project.changed`` event: its resource id and its wire form.

Prefect automations match on the resource id ``labelvault.project.<connection>.<project_id>``,
where ``connection`` is the name of the platform connection (a block name: lowercase letters,
digits and dashes) and ``project_id`` the platform's project id. Both, and the event's
``action``, are at most :data:`MAX_FIELD_CHARS` characters.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from labelvault.errors import ConfigurationError

__all__ = [
    "MAX_FIELD_CHARS",
    "PROJECT_CHANGED",
    "check_length",
    "parse_resource_id",
    "project_changed_event",
    "resource_id",
]

PROJECT_CHANGED = "labelvault.project.changed"
#: The longest connection name, project id or action an event may carry.
MAX_FIELD_CHARS = 128
_PREFIX = "labelvault.project."
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_PROJECT = re.compile(r"^[A-Za-z0-9_-]+$")


def resource_id(connection: str, project_id: str) -> str:
    """``labelvault.project.<connection>.<project_id>``; both parts are validated."""
    check_length("connection name", connection)
    check_length("project id", project_id)
    if not _NAME.match(connection):
        raise ConfigurationError(
            f"connection name {connection!r} must be lowercase letters, digits and dashes"
        )
    if not _PROJECT.match(project_id):
        raise ConfigurationError(
            f"project id {project_id!r} must be letters, digits, '_' or '-' to name an event"
        )
    return f"{_PREFIX}{connection}.{project_id}"


def check_length(what: str, value: str) -> None:
    """Refuse a field longer than :data:`MAX_FIELD_CHARS` (the message does not repeat it)."""
    if len(value) > MAX_FIELD_CHARS:
        raise ConfigurationError(
            f"the {what} is {len(value)} characters long; at most {MAX_FIELD_CHARS} are allowed"
        )


def parse_resource_id(value: str) -> tuple[str, str]:
    """Invert :func:`resource_id` into ``(connection, project_id)``."""
    if len(value) > len(_PREFIX) + 2 * MAX_FIELD_CHARS + 1:
        raise ConfigurationError(
            f"the resource id is {len(value)} characters long; it is not a labelvault project"
        )
    rest = value.removeprefix(_PREFIX)
    connection, dot, project_id = rest.rpartition(".")
    if rest == value or not dot or not _NAME.match(connection) or not _PROJECT.match(project_id):
        raise ConfigurationError(
            f"{value!r} is not a labelvault project resource id; "
            "expected labelvault.project.<connection>.<project_id>"
        )
    return connection, project_id


def project_changed_event(
    connection: str,
    project_id: str,
    *,
    action: str = "",
    payload: Mapping[str, Any] | None = None,
    occurred: datetime | None = None,
) -> dict[str, Any]:
    """The event as Prefect's ``POST /api/events`` takes it."""
    check_length("action", action)
    return {
        "id": str(uuid.uuid4()),
        "occurred": (occurred or datetime.now(UTC)).isoformat(),
        "event": PROJECT_CHANGED,
        "resource": {
            "prefect.resource.id": resource_id(connection, project_id),
            "prefect.resource.name": f"{connection} project {project_id}",
            "labelvault.connection": connection,
            "labelvault.project_id": project_id,
        },
        "payload": {"action": action, **(payload or {})},
        "related": [],
    }
