"""Supervisely capture against the fake server: content, order, and every kind of bad input."""

from __future__ import annotations

import json
import secrets
from collections import Counter
from typing import Any

import httpx
import pytest

from devstack.process import free_port
from labelvault.errors import (
    AuthenticationError,
    ConfigurationError,
    PaginationError,
    PlatformNotFound,
    PlatformUnavailable,
    RequestRejected,
    UnsupportedProject,
)
from labelvault.http import RequestSettings
from labelvault.platforms import Platform, get_platform_factory
from labelvault.platforms.supervisely import SuperviselyPlatform
from labelvault.snapshot.schema import TABLES, schema_for
from tests.fakes.supervisely import (
    SHAPES,
    FakeSupervisely,
    RichProject,
    add_plain_project,
    capture_tables,
    fingerprint_multisets,
    generate_rich_project,
    keys_in_order,
)

FAST = RequestSettings(backoff_jitter=0)


def make_platform(
    fake: FakeSupervisely, *, token: str | None = None, sleeps: list[float] | None = None, **kw: Any
) -> SuperviselyPlatform:
    options: dict[str, Any] = {"batch_size": 4, "list_page_size": 3, "concurrency": 3}
    options.update(kw)
    return SuperviselyPlatform(
        "http://sly.test",
        token if token is not None else fake.token,
        settings=options.pop("settings", FAST),
        transport=fake.transport(),
        sleep=(sleeps.append if sleeps is not None else _no_sleep),
        **options,
    )


def _no_sleep(seconds: float) -> None:
    raise AssertionError(f"unexpected retry sleep of {seconds} s")


@pytest.fixture
def fake() -> FakeSupervisely:
    return FakeSupervisely(default_per_page=5)


@pytest.fixture
def rich(fake: FakeSupervisely) -> RichProject:
    return generate_rich_project(fake, labelers=True)


def rows(tables: dict[str, list[Any]], table: str) -> list[dict[str, Any]]:
    return [row for batch in tables.get(table, []) for row in batch.to_pylist()]


def test_registered_and_protocol(fake: FakeSupervisely) -> None:
    assert get_platform_factory("supervisely") is SuperviselyPlatform
    platform = make_platform(fake)
    assert isinstance(platform, Platform)
    assert platform.instance == "sly.test:80"


def test_instance_and_url_normalisation(fake: FakeSupervisely) -> None:
    token = fake.token
    a = SuperviselyPlatform("https://App.Example.com/public/api/v3/", token)
    b = SuperviselyPlatform("https://app.example.com", token)
    assert a.instance == b.instance == "app.example.com:443"
    assert a.server_url == "https://App.Example.com"
    assert SuperviselyPlatform("http://10.0.0.5:8080", token).instance == "10.0.0.5:8080"
    for bad in ("app.example.com", "ftp://x.test", "http://", ""):
        with pytest.raises(ConfigurationError, match="not an http"):
            SuperviselyPlatform(bad, token)


def test_get_project(fake: FakeSupervisely, rich: RichProject) -> None:
    info = make_platform(fake).get_project(str(rich.project_id))
    assert info.platform == "supervisely"
    assert info.kind == "images"
    assert info.name == "Проект λ — rich 🚀"
    assert info.counts == {"items": 30, "datasets": 6}
    assert info.workspace_id == str(rich.workspace_id)
    assert info.updated_at is not None
    assert info.updated_at.tzinfo is not None


def test_capture_content(fake: FakeSupervisely, rich: RichProject) -> None:
    tables = capture_tables(make_platform(fake), str(rich.project_id))

    # every table's rows fit its schema and come in strictly increasing key order
    for table, batches in tables.items():
        assert table in TABLES
        for batch in batches:
            assert batch.schema.equals(schema_for(table))
        keys = keys_in_order(tables, table)
        assert keys == sorted(keys), table
        assert len(set(keys)) == len(keys), table
    # figures.list does not say who labelled a figure; annotation info does
    users = {u["login"] for u in rows(tables, "users")}
    assert users == set(fake.figure_authors.values()) | {
        t["labelerLogin"] for owned in fake.image_tags.values() for t in owned
    }
    assert {"anna.k", "Βασίλης", "李雷", "owner"} == users

    (project,) = rows(tables, "project")
    settings = json.loads(project["settings"])
    assert settings["groupImagesByTagName"] == "group"  # an id made into a natural reference
    assert "groupImagesByTagId" not in settings
    assert json.loads(project["custom_data"])["nested"] == {"a": [1, 2.5, "ü"], "b": None}
    assert project["readme"].startswith("# Rich project")
    definitions = json.loads(project["definitions"])
    assert {c["shape"] for c in definitions["classes"]} == {*SHAPES, "any"}
    assert all("id" not in c for c in definitions["classes"])
    assert json.loads(project["raw"])["info"]["id"] == rich.project_id

    datasets = rows(tables, "datasets")
    paths = {d["path"] for d in datasets}
    assert paths == {"train", "train/city", "train/city/night 🌙", "val", "val/rural", "テスト"}
    by_key = {d["key"]: d for d in datasets}
    deep = next(d for d in datasets if d["name"] == "night 🌙")
    assert by_key[by_key[deep["parent_key"]]["parent_key"]]["name"] == "train"
    assert json.loads(deep["custom_data"]) == {"split": "night 🌙", "weights": [0.5, 1 / 3]}

    items = rows(tables, "items")
    assert len(items) == 30
    assert {i["key"].split("#")[0] for i in items} <= set(by_key)
    links = [i for i in items if i["link"]]
    assert len(links) == len(rich.link_images)
    assert all(i["hash"] is None for i in links)
    assert sum(1 for i in items if i["hash"]) == len(rich.hash_images)
    assert "images.bulk.download" not in fake.methods_called()  # never pixels

    annotations = rows(tables, "annotations")
    assert len(annotations) == len(fake.figures)
    by_figure = {json.loads(a["raw"])["id"]: a for a in annotations}
    for figure_id, figure in fake.figures.items():
        row = by_figure[figure_id]
        if figure["geometryType"] == "alpha_mask":
            assert json.loads(row["geometry"]) == fake.alpha[figure_id]
        else:  # exact sub-pixel floats, no rounding
            assert json.loads(row["geometry"]) == figure["geometry"]
    assert {json.loads(a["raw"])["geometryType"] for a in annotations} == set(SHAPES) | {"polygon"}
    unknown = [a for a in annotations if json.loads(a["raw"])["geometryType"] == "multipolygon"]
    assert unknown
    assert {a["geometry_type"] for a in unknown} == {"unknown"}
    assert all(body["integerCoords"] is False for m, body in fake.calls if m == "figures.list")
    assert all(a["author"] == fake.figure_authors[json.loads(a["raw"])["id"]] for a in annotations)

    tags = rows(tables, "tags")
    expected = sum(len(t) for t in fake.image_tags.values()) + sum(
        len(t) for t in fake.figure_tags.values()
    )
    assert len(tags) == expected  # duplicates kept
    pairs = Counter((t["owner_key"], t["name"], t["value"]) for t in tags)
    assert any(count > 1 for count in pairs.values()), "duplicate assignments survive"
    assert {t["owner_type"] for t in tags} == {"item", "annotation"}
    assert '"ещё — 注意"' in {t["value"] for t in tags}
    owners = {i["key"] for i in items} | {a["key"] for a in annotations}
    assert all(t["owner_key"] in owners and t["key"].startswith(t["owner_key"]) for t in tags)
    figure_tag_authors = {
        t["id"]: t["labelerLogin"] for owned in fake.figure_tags.values() for t in owned
    }
    for tag in tags:
        if tag["owner_type"] == "annotation":
            assert tag["author"] == figure_tag_authors[json.loads(tag["raw"])["id"]]
    assert {"李雷", "owner"} <= {t["author"] for t in tags if t["owner_type"] == "annotation"}


def test_batches_are_bounded_and_interleaved(fake: FakeSupervisely, rich: RichProject) -> None:
    platform = make_platform(fake, batch_size=4)
    sequence = [
        (page.table, page.batch.num_rows) for page in platform.iter_pages(str(rich.project_id))
    ]
    assert sequence[0] == ("project", 1)
    assert sequence[1][0] == "datasets"
    assert all(n <= 4 for table, n in sequence if table == "items")
    assert [t for t, _ in sequence].count("items") >= 30 // 4


def test_listing_modes_and_concurrency_give_the_same_capture(
    fake: FakeSupervisely, rich: RichProject
) -> None:
    pid = str(rich.project_id)
    base = capture_tables(make_platform(fake, concurrency=1), pid)
    for variant in (
        make_platform(fake, image_listing="page"),
        make_platform(fake, concurrency=8, batch_size=2),
        make_platform(fake, list_page_size=1000, batch_size=200),
    ):
        other = capture_tables(variant, pid)
        for table in base:
            assert keys_in_order(other, table) == keys_in_order(base, table)
        assert fingerprint_multisets(other) == fingerprint_multisets(base)
    page_calls = [body for m, body in fake.calls if m == "images.list" and "page" in body]
    token_calls = [b for m, b in fake.calls if m == "images.list" and b.get("pagination_mode")]
    assert page_calls
    assert token_calls


def test_fingerprints_ignore_ids_and_timestamps(fake: FakeSupervisely, rich: RichProject) -> None:
    before = fingerprint_multisets(capture_tables(make_platform(fake), str(rich.project_id)))
    with fake.lock:
        for figure in fake.figures.values():
            figure["updatedAt"] = "2030-01-01T00:00:00.000Z"
    after = fingerprint_multisets(capture_tables(make_platform(fake), str(rich.project_id)))
    assert after == before
    with fake.lock:  # a sub-pixel change is a change
        figure = next(f for f in fake.figures.values() if f["geometryType"] == "point")
        figure["geometry"]["points"]["exterior"][0][0] += 1e-9
    moved = fingerprint_multisets(capture_tables(make_platform(fake), str(rich.project_id)))
    assert moved["annotations"] != before["annotations"]


def test_moving_a_figure_changes_its_fingerprint_and_not_its_tags(
    fake: FakeSupervisely, rich: RichProject
) -> None:
    pid = str(rich.project_id)
    before = capture_tables(make_platform(fake), pid)
    with fake.lock:
        fid, figure = next(
            (fid, f)
            for fid, f in fake.figures.items()
            if f["geometryType"] == "polygon" and len(fake.figure_tags.get(fid, [])) == 2
        )
        points = figure["geometry"]["points"]
        points["exterior"] = [[x + 3.25, y - 1.5] for x, y in points["exterior"]]
        points["interior"] = [[[x + 3.25, y - 1.5] for x, y in hole] for hole in points["interior"]]
        fake.touch_project(rich.project_id)
    after = capture_tables(make_platform(fake), pid)

    def changed(table: str) -> set[str]:
        old = {r["key"]: r["fingerprint"] for r in rows(before, table)}
        new = {r["key"]: r["fingerprint"] for r in rows(after, table)}
        assert old.keys() == new.keys()
        return {key for key in old if old[key] != new[key]}

    (moved,) = changed("annotations")
    assert moved.endswith(f"#{fid:012d}")
    owned = [r for r in rows(after, "tags") if r["owner_key"] == moved]
    assert len(owned) == 2
    assert changed("tags") == set()
    assert changed("items") == set()


def test_tags_of_different_figures_stay_apart(fake: FakeSupervisely, rich: RichProject) -> None:
    """Figure tags with the same name and value on two figures of one item differ."""
    with fake.lock:
        image = rich.hash_images[0]
        cls = next(c for c in fake.metas[rich.project_id]["classes"] if c["shape"] == "point")
        score = next(t for t in fake.metas[rich.project_id]["tags"] if t["name"] == "score")
        for x in (1.0, 2.0):
            geometry = {"points": {"exterior": [[x, x]], "interior": []}}
            made = fake.create_figure(image, cls["id"], "point", geometry)
            fake.add_figure_tag(made["id"], score["id"], 0.5)
    tables = capture_tables(make_platform(fake), str(rich.project_id))
    new = sorted(f for f, v in fake.figures.items() if v["entityId"] == image)[-2:]
    prints = [
        r["fingerprint"]
        for r in rows(tables, "tags")
        if any(r["owner_key"].endswith(f"#{fid:012d}") for fid in new)
    ]
    assert len(prints) == len(set(prints)) == 2


# --- bad input ---------------------------------------------------------------------------------


def test_unknown_project(fake: FakeSupervisely) -> None:
    platform = make_platform(fake)
    with pytest.raises(PlatformNotFound, match=r"project 999999 does not exist on sly\.test:80"):
        platform.get_project("999999")
    with pytest.raises(PlatformNotFound, match="not a number"):
        platform.get_project("abc")
    with pytest.raises(PlatformNotFound):
        list(platform.iter_pages("999999"))


@pytest.mark.parametrize("kind", ["point_clouds", "point_cloud_episodes", "future_kind"])
def test_unsupported_project_type(fake: FakeSupervisely, kind: str) -> None:
    pid = add_plain_project(fake, kind=kind)
    platform = make_platform(fake)
    only = "images, videos and volumes projects only"
    with pytest.raises(UnsupportedProject, match=rf"is a '{kind}' project; .*{only}"):
        platform.get_project(str(pid))
    with pytest.raises(UnsupportedProject):
        next(iter(platform.iter_pages(str(pid))))
    assert "projects.meta" not in fake.methods_called()


def test_bad_token_fails_at_once_without_the_token(
    fake: FakeSupervisely, rich: RichProject, caplog: pytest.LogCaptureFixture
) -> None:
    token = secrets.token_urlsafe(32)
    fake.echo_token_in_errors = True  # even a server that echoes it must not leak it
    sleeps: list[float] = []
    platform = make_platform(fake, token=token, sleeps=sleeps)
    with pytest.raises(AuthenticationError) as info:
        platform.get_project(str(rich.project_id))
    assert sleeps == []
    assert fake.methods_called() == ["projects.info"] or fake.calls == []
    assert token not in str(info.value)
    assert token not in caplog.text
    assert info.value.status == 401
    assert "token" in str(info.value)


def test_unreachable_server(fake: FakeSupervisely) -> None:
    sleeps: list[float] = []
    platform = SuperviselyPlatform(
        f"http://127.0.0.1:{free_port()}",
        fake.token,
        settings=RequestSettings(backoff_jitter=0, connect_timeout=2),
        sleep=sleeps.append,
    )
    with pytest.raises(PlatformUnavailable, match=r"ConnectError.*reachable.*after 4 attempts"):
        platform.get_project("1")
    assert sleeps == [1.5, 3.0, 6.0]


@pytest.mark.parametrize(
    ("status", "body", "content_type"),
    [
        (404, b"<html>Not Found</html>", "text/html"),
        (200, b"<html>Welcome to nginx</html>", "text/html"),
        (200, b'{"hello": "world"}', "application/json"),
        (405, b"", "text/plain"),
    ],
)
def test_not_a_supervisely_server(status: int, body: bytes, content_type: str) -> None:
    transport = httpx.MockTransport(
        lambda request: httpx.Response(status, content=body, headers={"content-type": content_type})
    )
    platform = SuperviselyPlatform(
        "http://example.test", secrets.token_hex(16), transport=transport, sleep=_no_sleep
    )
    with pytest.raises(RequestRejected, match=r"(?i)example\.test.* a supervisely server\?"):
        platform.get_project("7")


@pytest.mark.parametrize("method", ["datasets.list", "images.list", "figures.list"])
@pytest.mark.parametrize("listing", ["token", "page"])
def test_total_that_disagrees_with_entities(
    fake: FakeSupervisely, rich: RichProject, method: str, listing: str
) -> None:
    fake.total_skew[method] = 1
    platform = make_platform(fake, image_listing=listing)
    with pytest.raises(PaginationError, match="went missing") as info:
        list(platform.iter_pages(str(rich.project_id)))
    assert info.value.platform == "supervisely"
    assert info.value.project == str(rich.project_id)


def test_malformed_page_names_the_key(fake: FakeSupervisely, rich: RichProject) -> None:
    original = fake.methods["datasets.list"]
    fake.methods["datasets.list"] = lambda user, body: {
        k: v for k, v in original(user, body).items() if k != "pagesCount"
    }
    with pytest.raises(RequestRejected, match="expected key 'pagesCount'"):
        list(make_platform(fake).iter_pages(str(rich.project_id)))
