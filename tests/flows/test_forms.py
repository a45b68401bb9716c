"""The run forms: every parameter of every deployed flow is described, ids take numbers."""

from __future__ import annotations

import pytest
from prefect import Flow
from prefect.utilities.callables import parameter_schema
from pydantic import SecretStr

from flows.create_version import create_version
from flows.diff_versions import diff_versions
from flows.expire_versions import expire_versions
from flows.preview_version import preview_version
from flows.restore_version import report_markdown, restore_version
from flows.version_on_change import version_on_change
from labelvault.errors import ConfigurationError
from tasks.artifacts import markdown_table, summary_markdown
from tasks.blocks import PlatformConnectionBlock, load_connection, project_label

FLOWS = [
    create_version,
    restore_version,
    diff_versions,
    expire_versions,
    version_on_change,
    preview_version,
]


@pytest.mark.parametrize("flow", FLOWS, ids=lambda flow: flow.name)
def test_every_parameter_has_a_title_and_a_description(flow: Flow[..., object]) -> None:
    schema = parameter_schema(flow.fn).model_dump_for_openapi()
    for name, field in schema["properties"].items():
        assert field.get("title"), f"{flow.name}.{name} has no title"
        assert "_" not in field["title"], f"{flow.name}.{name}: the form shows a raw name"
        assert len(field.get("description") or "") > 10, f"{flow.name}.{name} undescribed"
    optional = [
        name
        for name, field in schema["properties"].items()
        if {"type": "null"} in field.get("anyOf", [])
    ]
    for name in optional:
        description = schema["properties"][name]["description"]
        assert "Empty (None)" in description, f"{flow.name}.{name}: what None means"


@pytest.mark.parametrize("flow", FLOWS, ids=lambda flow: flow.name)
def test_connection_and_store_are_picked_among_saved_blocks(flow: Flow[..., object]) -> None:
    schema = parameter_schema(flow.fn).model_dump_for_openapi()
    kinds = {
        "connection": "labelvault-platform-connection",
        "target_connection": "labelvault-platform-connection",
        "storage": "labelvault-store",
    }
    checked = 0
    for name, slug in kinds.items():
        if name not in schema["properties"]:
            continue
        options = schema["properties"][name]["anyOf"]
        refs = [option["$ref"].rsplit("/", 1)[-1] for option in options if "$ref" in option]
        assert [schema["definitions"][ref]["block_type_slug"] for ref in refs] == [slug], name
        assert {"type": "string"} in options, f"{name}: a block's name is still accepted"
        checked += 1
    assert checked >= 1


def test_a_block_picked_on_the_form_or_named_loads_the_same_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    saved = PlatformConnectionBlock(
        platform="labelstudio", server_url="http://127.0.0.1:1", token=SecretStr("t")
    )

    def load(cls: type[PlatformConnectionBlock], name: str) -> PlatformConnectionBlock:
        if name != "ls":
            raise ValueError(f"Unable to find block document named {name}")
        return saved

    monkeypatch.setattr(PlatformConnectionBlock, "load", classmethod(load))
    assert load_connection(saved) == load_connection("ls")
    missing = "no saved Labelvault Platform Connection block named 'lz'"
    with pytest.raises(ConfigurationError, match=missing):
        load_connection("lz")
    saved._block_document_name = "ls"
    assert project_label({"connection": saved, "project_id": 7}) == "ls/7"
    assert project_label({"project_id": 7}) == "supervisely/7"


@pytest.mark.parametrize("flow", [create_version, restore_version, diff_versions])
def test_project_ids_are_numbers_or_strings(flow: Flow[..., object]) -> None:
    schema = parameter_schema(flow.fn).model_dump_for_openapi()
    kinds = {option["type"] for option in schema["properties"]["project_id"]["anyOf"]}
    assert kinds == {"integer", "string"}


def test_summary_markdown_is_separate_tables_without_python_values() -> None:
    summary = {
        "project": "supervisely/sly.test:80/5007",
        "version": 3,
        "reason": "created version 3",
        "rows": {"items": 12, "annotations": 40},
        "bytes_written": 2048,
        "bytes_reused": 1_500_000,
        "seconds": 1.5,
        "items_per_second": 8.0,
        "captures": 1,
    }
    markdown = summary_markdown(summary, {"car": 30, "": 10})
    for heading in ("Rows per table", "Annotations per class", "Storage", "Time"):
        assert f"## {heading}" in markdown
    assert "| car | 30 |" in markdown
    assert "(no class)" in markdown
    assert "1.4 MiB" in markdown
    assert "{" not in markdown


def test_restore_markdown_has_no_python_reprs() -> None:
    report = {
        "version": 2,
        "project_id": 99,
        "project_name": "cars, from ver. 2",
        "workspace_id": 1,
        "resumed": False,
        "created": {"items": 3, "annotations": 5},
        "filtered_out": {"annotations": 4},
        "skipped": 0,
        "failures": 0,
        "warnings": ["class 'x' missing"],
    }
    markdown = report_markdown(report)
    assert "| annotations | 4 |" in markdown
    assert "{" not in markdown
    assert "[" not in markdown
    assert markdown_table(["a", "b"], []).endswith("| (none) |  |")
