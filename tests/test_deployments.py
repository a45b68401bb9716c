"""Every deployment in prefect.yaml loads, and its parameters fit its flow's signature."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect.flows import load_flow_from_entrypoint

REPO = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((REPO / "prefect.yaml").read_text())
DEPLOYMENTS: list[dict[str, Any]] = CONFIG["deployments"]


def test_deployment_names_are_unique_and_expected() -> None:
    names = [deployment["name"] for deployment in DEPLOYMENTS]
    assert len(names) == len(set(names))
    assert {
        "nightly-version",
        "create-version",
        "restore-version",
        "version-on-change",
        "expire-versions",
    } <= set(names)


@pytest.mark.parametrize("deployment", DEPLOYMENTS, ids=lambda d: d["name"])
def test_entrypoint_loads_and_parameters_match(deployment: dict[str, Any]) -> None:
    flow = load_flow_from_entrypoint(str(REPO / deployment["entrypoint"]))
    signature = inspect.signature(flow.fn)
    given = set(deployment.get("parameters") or {})
    for trigger in deployment.get("triggers") or []:
        given |= set(trigger.get("parameters") or {})
    assert given <= set(signature.parameters), (
        f"unknown parameters {given - set(signature.parameters)}"
    )
    required = {
        name
        for name, parameter in signature.parameters.items()
        if parameter.default is inspect.Parameter.empty
    }
    if deployment.get("schedules") or deployment.get("triggers"):
        # Runs nobody starts by hand must get every required parameter from the deployment.
        assert required <= given, f"{deployment['name']} misses {required - given}"
    assert deployment["enforce_parameter_schema"] is True
    assert deployment["work_pool"]["name"] == "labelvault"


def test_event_trigger_is_per_project_and_matches_the_bridge_events() -> None:
    [deployment] = [d for d in DEPLOYMENTS if d["name"] == "version-on-change"]
    [trigger] = deployment["triggers"]
    assert trigger["expect"] == ["labelvault.project.changed"]
    assert trigger["for_each"] == ["prefect.resource.id"]
    assert trigger["match"]["prefect.resource.id"] == "labelvault.project.*"
