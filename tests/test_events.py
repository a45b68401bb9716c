from __future__ import annotations

import pytest

from labelvault.errors import ConfigurationError
from labelvault.events import (
    PROJECT_CHANGED,
    parse_resource_id,
    project_changed_event,
    resource_id,
)


@pytest.mark.parametrize(
    ("connection", "project_id"),
    [("supervisely", "42"), ("ls-prod-2", "7"), ("a", "x_y-z")],
)
def test_resource_id_round_trips(connection: str, project_id: str) -> None:
    rid = resource_id(connection, project_id)
    assert rid == f"labelvault.project.{connection}.{project_id}"
    assert parse_resource_id(rid) == (connection, project_id)


@pytest.mark.parametrize(
    ("connection", "project_id"),
    [("Upper", "1"), ("has.dot", "1"), ("", "1"), ("ok", "1.2"), ("ok", ""), ("ok", "a/b")],
)
def test_resource_id_refuses_names_that_would_not_parse(connection: str, project_id: str) -> None:
    with pytest.raises(ConfigurationError):
        resource_id(connection, project_id)


@pytest.mark.parametrize(
    "value",
    ["labelvault.project.", "labelvault.project.onlyone", "prefect.flow-run.x", "x.y.z.1"],
)
def test_parse_resource_id_names_the_expected_form(value: str) -> None:
    with pytest.raises(ConfigurationError, match=r"labelvault\.project\.<connection>"):
        parse_resource_id(value)


def test_event_has_the_shape_prefect_takes() -> None:
    event = project_changed_event("ls", "3", action="ANNOTATION_CREATED")
    assert event["event"] == PROJECT_CHANGED
    assert event["resource"]["prefect.resource.id"] == "labelvault.project.ls.3"
    assert event["resource"]["labelvault.project_id"] == "3"
    assert event["payload"] == {"action": "ANNOTATION_CREATED"}
    assert event["occurred"].endswith("+00:00")
    assert len(event["id"]) == 36
