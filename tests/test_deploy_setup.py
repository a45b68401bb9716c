"""``make deploy``'s checks: what it deploys, and what it refuses, before touching a server."""

from __future__ import annotations

import pytest

from deployments.setup import NIGHTLY, SetupError, deployment_names, plan_deployments


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
