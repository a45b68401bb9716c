"""``make deploy``'s checks: what it deploys, and what it refuses, before touching a server."""

from __future__ import annotations

import importlib
import inspect

import pytest
import yaml

from deployments.setup import NIGHTLY, REPO, SetupError, deployment_names, plan_deployments


def test_unset_nightly_project_leaves_the_nightly_deployment_out_and_says_so() -> None:
    names, env, notes = plan_deployments({})
    assert NIGHTLY not in names
    assert set(deployment_names()) - set(names) == {NIGHTLY}
    assert any("LABELVAULT_NIGHTLY_PROJECT_ID is not set" in note for note in notes)
    assert env["LABELVAULT_NIGHTLY_CONNECTION"] == "supervisely"


def test_a_nightly_project_deploys_everything() -> None:
    names, env, _ = plan_deployments({"LABELVAULT_NIGHTLY_PROJECT_ID": " 5007 "})
    assert names == deployment_names()
    assert env["LABELVAULT_NIGHTLY_PROJECT_ID"] == "5007"


@pytest.mark.parametrize("value", ["{{ $LABELVAULT_NIGHTLY_PROJECT_ID }}", "50 07", "x" * 200])
def test_a_malformed_nightly_project_is_refused_in_one_line(value: str) -> None:
    with pytest.raises(SetupError, match="is not a project id") as caught:
        plan_deployments({"LABELVAULT_NIGHTLY_PROJECT_ID": value})
    assert "\n" not in str(caught.value)


LABEL_STUDIO_ONLY = {
    "LABELVAULT_LABELSTUDIO_URL": "http://ls.test",
    "LABELVAULT_LABELSTUDIO_TOKEN": "t",
}
SUPERVISELY_ONLY = {
    "LABELVAULT_SUPERVISELY_URL": "http://sly.test",
    "LABELVAULT_SUPERVISELY_TOKEN": "t",
}


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, "supervisely"),
        (LABEL_STUDIO_ONLY, "labelstudio"),
        (SUPERVISELY_ONLY, "supervisely"),
        ({**LABEL_STUDIO_ONLY, **SUPERVISELY_ONLY}, "supervisely"),
        ({**LABEL_STUDIO_ONLY, "LABELVAULT_DEFAULT_CONNECTION": "team-ls"}, "team-ls"),
        ({"LABELVAULT_LABELSTUDIO_URL": "http://ls.test"}, "supervisely"),
    ],
    ids=["nothing", "label studio", "supervisely", "both", "chosen", "no token"],
)
def test_the_forms_offer_the_connection_that_is_configured(
    environ: dict[str, str], expected: str
) -> None:
    _, env, _ = plan_deployments(environ)
    assert env["LABELVAULT_DEFAULT_CONNECTION"] == expected
    assert env["LABELVAULT_NIGHTLY_CONNECTION"] == expected


def test_every_deployment_with_a_connection_takes_it_from_setup() -> None:
    document = yaml.safe_load((REPO / "prefect.yaml").read_text())
    with_connection = []
    for entry in document["deployments"]:
        path, _, name = entry["entrypoint"].partition(":")
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        flow = getattr(module, name)
        if "connection" in inspect.signature(flow.fn).parameters:
            with_connection.append(entry["name"])
            assert entry["parameters"]["connection"] in (
                "{{ $LABELVAULT_DEFAULT_CONNECTION }}",
                "{{ $LABELVAULT_NIGHTLY_CONNECTION }}",
            ), entry["name"]
    assert {"create-version", "restore-version", NIGHTLY} <= set(with_connection)
