"""The fake Supervisely server answers with the reference's shapes (so the other tests mean
something): errors, pagination, multipart, and the versions reserve/commit/cancel protocol."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from labelvault.http.multipart import iter_multipart
from tests.fakes.supervisely import API_PREFIX, FakeSupervisely, FaultPlan, generate_rich_project

VERSION_KEYS = {
    "id",
    "projectId",
    "createdBy",
    "teamFileId",
    "version",
    "description",
    "status",
    "createdAt",
    "updatedAt",
    "projectUpdatedAt",
    "teamId",
    "name",
    "previewProjectId",
}


@pytest.fixture
def fake() -> FakeSupervisely:
    return FakeSupervisely(default_per_page=4)


@pytest.fixture
def client(fake: FakeSupervisely) -> httpx.Client:
    return httpx.Client(
        base_url="http://sly.test" + API_PREFIX,
        headers={"x-api-key": fake.token},
        transport=fake.transport(),
    )


def call(client: httpx.Client, method: str, body: Any) -> httpx.Response:
    return client.post(method, content=json.dumps(body))


def test_errors_have_the_reference_shape(fake: FakeSupervisely, client: httpx.Client) -> None:
    missing = call(client, "projects.info", {"id": 1})
    assert missing.status_code == 404
    assert set(missing.json()) == {"error", "details"}
    with httpx.Client(transport=fake.transport()) as bare:
        anonymous = bare.post("http://sly.test/public/api/v3/projects.info", json={"id": 1})
    assert anonymous.status_code == 401
    assert "error" in anonymous.json()
    assert call(client, "instance.version", {}).json()["version"] >= "6.18.3"
    elsewhere = client.get("http://sly.test/index.html")
    assert elsewhere.status_code == 404
    assert elsewhere.headers["content-type"] == "text/html"


def test_page_and_token_mode(fake: FakeSupervisely, client: httpx.Client) -> None:
    rich = generate_rich_project(fake)
    dataset = rich.dataset_ids[0]
    first = call(client, "images.list", {"datasetId": dataset}).json()
    assert set(first) == {"total", "perPage", "pagesCount", "entities"}
    assert (first["total"], first["perPage"], first["pagesCount"]) == (5, 4, 2)
    second = call(client, "images.list", {"datasetId": dataset, "page": 2, "per_page": 4}).json()
    ids = [e["id"] for e in first["entities"] + second["entities"]]
    assert ids == sorted(ids)
    assert len(ids) == 5

    body: dict[str, Any] = {"datasetId": dataset, "pagination_mode": "token", "per_page": 2}
    seen = []
    while True:
        page = call(client, "images.list", body).json()
        assert set(page) == {"total", "after", "entities"}
        assert page["total"] == 5
        seen += [e["id"] for e in page["entities"]]
        if page["after"] is None:
            break
        body["after"] = page["after"]
    assert seen == ids


def test_custom_data_only_when_asked(fake: FakeSupervisely, client: httpx.Client) -> None:
    rich = generate_rich_project(fake)
    plain = call(client, "datasets.list", {"projectId": rich.project_id, "recursive": True}).json()
    assert all("customData" not in d for d in plain["entities"])
    rich_list = call(
        client,
        "datasets.list",
        {
            "projectId": rich.project_id,
            "recursive": True,
            "extraFields": ["customData"],
            "per_page": 10,
        },
    ).json()
    assert rich_list["total"] == 6
    assert all("customData" in d for d in rich_list["entities"])
    roots = call(client, "datasets.list", {"projectId": rich.project_id, "per_page": 10}).json()
    assert roots["total"] == 3


def test_integer_coords_by_default(fake: FakeSupervisely, client: httpx.Client) -> None:
    rich = generate_rich_project(fake)
    body = {"datasetId": rich.dataset_ids[0], "per_page": 100}
    rounded = call(client, "figures.list", body).json()["entities"]
    exact = call(client, "figures.list", {**body, "integerCoords": False}).json()["entities"]
    points = [f for f in rounded if f["geometryType"] == "point"]
    assert points
    assert all(isinstance(v, int) for f in points for v in f["geometry"]["points"]["exterior"][0])
    assert any(
        isinstance(v, float)
        for f in exact
        if f["geometryType"] == "point"
        for v in f["geometry"]["points"]["exterior"][0]
    )


def test_alpha_geometry_multipart(fake: FakeSupervisely, client: httpx.Client) -> None:
    rich = generate_rich_project(fake)
    masks = [f for f, v in fake.figures.items() if v["geometryType"] == "alpha_mask"]
    answer = call(client, "figures.bulk.download.geometry", {"ids": masks})
    parts = {
        int(p.name or 0): json.loads(p.content)
        for p in iter_multipart(answer.content, answer.headers["content-type"])
    }
    assert parts == {m: fake.alpha[m] for m in masks}
    assert rich.project_id in fake.projects


def test_hashes_and_name_clashes(fake: FakeSupervisely, client: httpx.Client) -> None:
    rich = generate_rich_project(fake)
    known = fake.images[rich.hash_images[0]]["hash"]
    assert call(client, "images.internal.hashes.list", [known, "nope"]).json() == [known]
    assert call(client, "images.internal.hashes.list", ["x"] * 901).status_code == 400
    clash = call(
        client,
        "images.bulk.add",
        {
            "datasetId": rich.dataset_ids[0],
            "images": [{"title": fake.images[rich.hash_images[0]]["name"], "hash": known}],
        },
    )
    assert clash.status_code == 400
    assert clash.json()["details"][0]["type"] == "NONUNIQUE"


def test_versions_protocol(fake: FakeSupervisely, client: httpx.Client) -> None:
    rich = generate_rich_project(fake)
    pid = rich.project_id
    reserved = call(client, "projects.versions.reserve", {"projectId": pid}).json()
    assert set(reserved) == {"id", "commitToken"}
    assert len(reserved["commitToken"]) == 64
    busy = call(client, "projects.versions.reserve", {"projectId": pid})
    assert busy.status_code == 400
    assert "is already committing" in busy.json()["details"]["message"]

    updated_at = fake.projects[pid]["updatedAt"]
    bad = call(
        client,
        "projects.versions.commit",
        {**reserved, "commitToken": "x" * 64, "projectUpdatedAt": updated_at, "teamFileId": 1},
    )
    assert bad.status_code == 400
    ok = call(
        client,
        "projects.versions.commit",
        {**reserved, "projectUpdatedAt": updated_at, "teamFileId": 1, "title": "v1"},
    )
    assert ok.json() == {"success": True}

    same = call(client, "projects.versions.reserve", {"projectId": pid})
    assert same.status_code == 400
    assert same.json()["details"] == {
        "useExistingVersion": True,
        "version": {"id": reserved["id"], "version": 1},
    }

    with fake.lock:
        fake.touch_project(pid)
    again = call(client, "projects.versions.reserve", {"projectId": pid}).json()
    assert call(client, "projects.versions.cancel-reservation", again).json() == {"success": True}
    listed = call(
        client, "projects.versions.list", {"projectId": pid, "sort": "id", "sort_order": "asc"}
    ).json()
    assert listed["total"] == 2
    assert all(set(v) == VERSION_KEYS for v in listed["entities"])
    assert [v["name"] for v in listed["entities"]] == ["v1", None]
    assert call(client, "projects.versions.update", {"id": reserved["id"]}).status_code == 400
    assert call(
        client, "projects.versions.update", {"id": reserved["id"], "description": "d"}
    ).json() == {"success": True}


def test_faults_are_deterministic_and_bounded(fake: FakeSupervisely) -> None:
    fake.faults = FaultPlan(rate=0.5, seed=3, kinds=("503",), max_consecutive=2, max_faults=1000)
    client = httpx.Client(
        base_url="http://sly.test" + API_PREFIX,
        headers={"x-api-key": fake.token},
        transport=fake.transport(),
    )
    outcomes = [call(client, "instance.version", {}).status_code for _ in range(30)]
    runs = "".join("x" if s == 503 else "." for s in outcomes)
    assert "xxx" not in runs
    assert "x" in runs
    fake2 = FakeSupervisely()
    fake2.faults = FaultPlan(rate=0.5, seed=3, kinds=("503",), max_consecutive=2, max_faults=1000)
    client2 = httpx.Client(
        base_url="http://sly.test" + API_PREFIX,
        headers={"x-api-key": fake2.token},
        transport=fake2.transport(),
    )
    assert [call(client2, "instance.version", {}).status_code for _ in range(30)] == outcomes


def _pages(client: httpx.Client, method: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    """Every entity of a page-mode listing."""
    entities: list[dict[str, Any]] = []
    page = 1
    while True:
        answer = call(client, method, {**body, "page": page}).json()
        entities += answer["entities"]
        if page >= answer["pagesCount"]:
            return entities
        page += 1


def test_listings_agree_with_a_full_scan(fake: FakeSupervisely, client: httpx.Client) -> None:
    rich = generate_rich_project(fake)
    other = generate_rich_project(fake, seed=1, name="other")
    with fake.lock:
        gone = sorted(fake.figures)[3]
        owner = fake.figures[gone]["entityId"]
        del fake.figures[gone]
        added = fake.create_figure(
            rich.hash_images[0],
            fake.figures[sorted(fake.figures)[0]]["classId"],
            fake.figures[sorted(fake.figures)[0]]["geometryType"],
            {"points": {"exterior": [[1.5, 2.5], [3.5, 4.5]], "interior": []}},
        )
    everything = list(fake.figures.values())
    assert gone not in {f["id"] for f in everything}
    asked = [owner, rich.hash_images[0], *other.hash_images[:2], *rich.link_images]
    for dataset in (*rich.dataset_ids, *other.dataset_ids):
        images = _pages(client, "images.list", {"datasetId": dataset, "per_page": 3})
        assert [i["labelsCount"] for i in images] == [
            sum(1 for f in everything if f["entityId"] == i["id"]) for i in images
        ]
        in_dataset = [f["id"] for f in everything if f["datasetId"] == dataset]
        listed = _pages(client, "figures.list", {"datasetId": dataset, "per_page": 4})
        assert [f["id"] for f in listed] == in_dataset
        by_image = {"field": "entityId", "operator": "in", "value": asked}
        listed = _pages(client, "figures.list", {"datasetId": dataset, "filter": [by_image]})
        assert [f["id"] for f in listed] == [
            f["id"] for f in everything if f["datasetId"] == dataset and f["entityId"] in asked
        ]
        some = [gone, added["id"], *in_dataset[::2], *sorted(fake.figures)[:5]]
        by_id = {"field": "id", "operator": "in", "value": some}
        listed = _pages(client, "figures.list", {"datasetId": dataset, "filter": [by_id]})
        assert [f["id"] for f in listed] == [fid for fid in in_dataset if fid in some]
    info = call(client, "images.info", {"id": owner}).json()
    assert info["labelsCount"] == sum(1 for f in everything if f["entityId"] == owner)
    bulk = call(
        client, "annotations.bulk.info", {"datasetId": rich.dataset_ids[0], "imageIds": [owner]}
    ).json()
    assert [o["id"] for o in bulk[0]["annotation"]["objects"]] == sorted(
        f["id"] for f in everything if f["entityId"] == owner
    )


def test_filters_and_sorts_on_fields_the_answer_adds(
    fake: FakeSupervisely, client: httpx.Client
) -> None:
    rich = generate_rich_project(fake, images_per_dataset=6)
    dataset = rich.dataset_ids[0]
    by_count = _pages(
        client,
        "images.list",
        {"datasetId": dataset, "sort": "labelsCount", "sort_order": "desc", "per_page": 2},
    )
    counts = [i["labelsCount"] for i in by_count]
    assert counts == sorted(counts, reverse=True)
    assert len(set(counts)) > 1
    tagged = _pages(
        client,
        "figures.list",
        {"datasetId": dataset, "filter": [{"field": "tags", "operator": "!=", "value": []}]},
    )
    assert [f["id"] for f in tagged] == sorted(
        fid
        for fid, f in fake.figures.items()
        if f["datasetId"] == dataset and fake.figure_tags.get(fid)
    )
    assert all(f["tags"] for f in tagged)


def test_only_the_page_is_rendered(
    fake: FakeSupervisely, client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    rich = generate_rich_project(fake, images_per_dataset=20)
    rendered: list[str] = []
    figure_json, image_json = fake.figure_json, fake.image_json

    def count_figure(figure: dict[str, Any], *, integer_coords: bool) -> dict[str, Any]:
        rendered.append("figure")
        return figure_json(figure, integer_coords=integer_coords)

    def count_image(image: dict[str, Any]) -> dict[str, Any]:
        rendered.append("image")
        return image_json(image)

    monkeypatch.setattr(fake, "figure_json", count_figure)
    monkeypatch.setattr(fake, "image_json", count_image)
    dataset = rich.dataset_ids[0]
    figures = call(client, "figures.list", {"datasetId": dataset, "per_page": 5}).json()
    assert figures["total"] > 50
    assert rendered == ["figure"] * 5
    rendered.clear()
    images = call(
        client, "images.list", {"datasetId": dataset, "pagination_mode": "token", "per_page": 3}
    ).json()
    assert images["total"] == 20
    assert rendered == ["image"] * 3
