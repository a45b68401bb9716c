"""Supervisely: labelvault capture and restore next to the real SDK's version create and restore.

Serves the fake Supervisely server (``tests/fakes/supervisely.py``, threaded, on 127.0.0.1),
fills it with one image project of N figures (``--figures``, default 10^5: 10 figures per
image, rectangles and polygons with sub-pixel coordinates, an image tag on every fifth image,
spread over 10 datasets), and measures, each in a process of its own:

- the bare listing: ``datasets.list``, then per dataset ``images.list`` (token mode, 1000 a
  page) and ``figures.list`` (page mode, 1000 a page, exact coordinates), with plain httpx;
- labelvault capture (``Vault.capture`` into a local folder store) and restore of that
  version (``Vault.restore``, a new project); then ``create --parallel N`` for N = 2, 4, 8
  (a partition a dataset, N read side by side, merged and committed into a fresh store) and
  ``restore --parallel N`` (ranges of items, N restored side by side);
- the SDK's ``api.project.version.create`` (its columnar snapshot, uploaded to Team Files)
  and ``api.project.version.restore`` (a new project), in the SDK's own venv
  (``tests/servers/supervisely_sdk.py`` installs it on first use).

The same run then measures a video project (``--video-figures``, default 20,000: 100 figures
a video, four objects each with a rectangle or polygon on every other of 50 frames, a video
tag over a frame range) and a volume project (``--volume-figures``, default 10,000: plane
figures on the axial slices of 32x32x50 volumes, and a 3D mask of raw NRRD bytes on each), on
the same fake server and side by side with the SDK; their bare listing reads the annotations
with ``videos.annotations.bulk.info`` / ``volumes.annotations.bulk.info`` (exact coordinates,
100 a call) and the masks with ``figures.bulk.download.geometry``.

Each is timed twice: the step alone (timed inside the process, after its imports) and the
whole command (the wall time of the process, interpreter start and imports included). Peak
RSS is the process's own (``VmHWM`` as it ends; see :func:`peak_rss_mb`). "vs SDK" is the
SDK's time for the same step and measure divided by this row's time (above 1: faster than the
SDK).

Run: ``uv run python benchmarks/supervisely.py [--figures 100000] [--video-figures 20000]
[--volume-figures 10000]``; ``--figures 2000 --video-figures 1000 --volume-figures 500`` for a
quick check.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PER_IMAGE = 10
DATASETS = 10
#: The video project: frames a video, objects a video, figures an object (every other frame).
FRAMES, OBJECTS_PER_VIDEO, FIGURES_PER_OBJECT = 50, 4, 25
PER_VIDEO = OBJECTS_PER_VIDEO * FIGURES_PER_OBJECT
#: The volume project: a volume's size (x, y, z), plane figures a volume (two objects, one
#: figure each on the first axial slices) and one 3D mask.
VOLUME_DIMS = (32, 32, 50)
PLANE_FIGURES_PER_VOLUME = 2 * VOLUME_DIMS[2]
PER_VOLUME = PLANE_FIGURES_PER_VOLUME + 1
ENTITY_DATASETS = 4
WIDTH, HEIGHT = 1920, 1080
TOKEN_ENV = "LABELVAULT_BENCH_SLY_TOKEN"
#: a 10^5-figure run of the SDK takes minutes on two busy cores; this only stops a hang
TIMEOUT = 3600.0


def peak_rss_mb() -> float:
    """This process's peak resident memory, in MB: ``VmHWM``, the high-water mark of its own
    address space. Not ``ru_maxrss``: Linux carries that over ``exec`` from the address space
    it replaces, so a child started by a big parent would report the parent's size."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- the children: each step in a process of its own ----------------------------------------


def child_listing(url: str, project_id: int) -> dict[str, Any]:
    """Page through the project with plain httpx, as a client with no SDK would."""
    import httpx

    started = time.monotonic()
    figures = images = 0
    headers = {"x-api-key": os.environ[TOKEN_ENV]}
    with httpx.Client(base_url=f"{url}/public/api/v3/", headers=headers, timeout=600) as client:

        def post(method: str, body: dict[str, Any]) -> Any:
            response = client.post(method, json=body)
            response.raise_for_status()
            return response.json()

        datasets = post("datasets.list", {"projectId": project_id, "recursive": True})
        assert datasets["pagesCount"] == 1, datasets["pagesCount"]
        for dataset in datasets["entities"]:
            after = None
            while True:
                body: dict[str, Any] = {
                    "datasetId": dataset["id"],
                    "pagination_mode": "token",
                    "per_page": 1000,
                }
                if after:
                    body["after"] = after
                page = post("images.list", body)
                images += len(page["entities"])
                after = page["after"]
                if not after:
                    break
            number = 1
            while True:
                page = post(
                    "figures.list",
                    {
                        "datasetId": dataset["id"],
                        "integerCoords": False,
                        "page": number,
                        "per_page": 1000,
                    },
                )
                figures += len(page["entities"])
                if number >= page["pagesCount"]:
                    break
                number += 1
    return {
        "seconds": time.monotonic() - started,
        "figures": figures,
        "images": images,
        "peak_rss_mb": peak_rss_mb(),
    }


def child_entity_listing(url: str, project_id: int, kind: str) -> dict[str, Any]:
    """A video or volume project with plain httpx: its entities page by page, their
    annotations 100 a call with exact coordinates, and (volumes) the 3D masks' bytes."""
    import httpx

    started = time.monotonic()
    figures = entities = mask_bytes = 0
    headers = {"x-api-key": os.environ[TOKEN_ENV]}
    plural = f"{kind}s"
    with httpx.Client(base_url=f"{url}/public/api/v3/", headers=headers, timeout=600) as client:

        def post(method: str, body: dict[str, Any]) -> Any:
            response = client.post(method, json=body)
            response.raise_for_status()
            return response

        datasets = post("datasets.list", {"projectId": project_id, "recursive": True}).json()
        assert datasets["pagesCount"] == 1, datasets["pagesCount"]
        for dataset in datasets["entities"]:
            ids: list[int] = []
            number = 1
            while True:
                page = post(
                    f"{plural}.list", {"datasetId": dataset["id"], "page": number, "per_page": 500}
                ).json()
                ids += [entity["id"] for entity in page["entities"]]
                if number >= page["pagesCount"]:
                    break
                number += 1
            entities += len(ids)
            for start in range(0, len(ids), 100):
                annotations = post(
                    f"{plural}.annotations.bulk.info",
                    {
                        "datasetId": dataset["id"],
                        f"{kind}Ids": ids[start : start + 100],
                        "integerCoords": False,
                    },
                ).json()
                masks = []
                for annotation in annotations:
                    if kind == "video":
                        figures += sum(len(frame["figures"]) for frame in annotation["frames"])
                        continue
                    for plane in annotation["planes"]:
                        figures += sum(len(piece["figures"]) for piece in plane["slices"])
                    figures += len(annotation["spatialFigures"])
                    masks += [f["id"] for f in annotation["spatialFigures"]]
                for first in range(0, len(masks), 50):
                    mask_bytes += len(
                        post(
                            "figures.bulk.download.geometry", {"ids": masks[first : first + 50]}
                        ).content
                    )
    return {
        "seconds": time.monotonic() - started,
        "figures": figures,
        "entities": entities,
        "mask_bytes": mask_bytes,
        "peak_rss_mb": peak_rss_mb(),
    }


def child_capture(url: str, project_id: int, store_root: str, parallel: int = 1) -> dict[str, Any]:
    from labelvault.platforms.supervisely import SuperviselyPlatform
    from labelvault.storage.local import LocalStore
    from labelvault.vault import Vault

    started = time.monotonic()
    with (
        SuperviselyPlatform(url, os.environ[TOKEN_ENV]) as platform,
        Vault(LocalStore(store_root)) as vault,
    ):
        result = vault.capture(platform, str(project_id), parallel=parallel)
    return {
        "seconds": time.monotonic() - started,
        # Image figures are the annotations table's rows; video and volume figures have a
        # table of their own.
        "figures": result.rows.get("annotations", 0) + result.rows.get("figures", 0),
        "version": result.version.number,
        "bytes": result.bytes_written,
        "peak_rss_mb": peak_rss_mb(),
    }


def child_restore(url: str, project_id: int, store_root: str, parallel: int = 1) -> dict[str, Any]:
    from labelvault.capture import project_ref
    from labelvault.models import RestoreOptions
    from labelvault.platforms.supervisely import SuperviselyPlatform
    from labelvault.storage.local import LocalStore
    from labelvault.vault import Vault

    started = time.monotonic()
    with (
        SuperviselyPlatform(url, os.environ[TOKEN_ENV]) as platform,
        Vault(LocalStore(store_root)) as vault,
    ):
        _, report = vault.restore(
            platform,
            project_ref(platform, str(project_id)),
            None,
            restore_id=uuid.uuid4().hex,
            options=RestoreOptions(project_name=f"labelvault restore {uuid.uuid4().hex[:6]}"),
            parallel=parallel,
        )
    return {
        "seconds": time.monotonic() - started,
        "figures": report.created.get("annotations", 0) + report.created.get("figures", 0),
        "project_id": int(report.project.project_id),
        "peak_rss_mb": peak_rss_mb(),
    }


# --- the parent -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Measured:
    """One step in its own process: the step's own seconds, the whole command's, peak RSS."""

    step: float
    whole: float
    rss: float
    answer: dict[str, Any]


def quiet_server_heap() -> None:
    """Move what the fake holds so far (the projects filled and restored) out of the cyclic
    collector's reach: the server runs in this process, and a full collection over millions
    of stored rows would stall it for seconds in whichever step it fell."""
    gc.collect()
    gc.freeze()


def run_child(*args: object, token: str) -> Measured:
    quiet_server_heap()
    env = dict(os.environ, **{TOKEN_ENV: token})
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, __file__, "--child", *map(str, args)],
        check=False,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=TIMEOUT,
    )
    whole = time.monotonic() - started
    if done.returncode != 0:
        raise RuntimeError(f"child {args[0]} failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}")
    answer: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return Measured(answer["seconds"], whole, answer["peak_rss_mb"], answer)


def fill(fake: Any, figures: int, seed: int = 0) -> int:
    """An image project of ``figures`` figures in the fake; returns its id."""
    rng = random.Random(seed)
    with fake.lock:
        project = fake.create_project(
            name="benchmark", workspace_id=fake.workspace_id, description="bench"
        )
        pid = int(project["id"])
        meta = fake.set_meta(
            pid,
            {
                "classes": [
                    {"title": "box", "shape": "rectangle"},
                    {"title": "area", "shape": "polygon"},
                ],
                "tags": [{"name": "quality", "value_type": "any_string"}],
            },
        )
        box, area = meta["classes"]
        (quality,) = meta["tags"]
        datasets = [fake.create_dataset(pid, f"part {n:02d}")["id"] for n in range(DATASETS)]
        images = math.ceil(figures / PER_IMAGE)
        made = 0
        for n in range(images):
            media = fake.register_hash(width=WIDTH, height=HEIGHT, seed=f"bench:{n}")
            image = fake.create_image(datasets[n % DATASETS], f"img_{n:07d}.jpg", media_hash=media)
            if n % 5 == 0:
                fake.add_image_tag(image["id"], quality["id"], "good")
            for k in range(min(PER_IMAGE, figures - made)):

                def xy() -> list[float]:
                    return [rng.uniform(0, WIDTH), rng.uniform(0, HEIGHT)]

                if k % 2 == 0:
                    (x1, y1), (x2, y2) = xy(), xy()
                    points = [[min(x1, x2), min(y1, y2)], [max(x1, x2), max(y1, y2)]]
                    cls, shape = box, "rectangle"
                else:
                    points = [xy() for _ in range(6)]
                    cls, shape = area, "polygon"
                fake.create_figure(
                    image["id"], cls["id"], shape, {"points": {"exterior": points, "interior": []}}
                )
                made += 1
    return pid


def fill_video(fake: Any, figures: int, seed: int = 0) -> int:
    """A video project of about ``figures`` figures (whole videos) in the fake; returns its id."""
    rng = random.Random(seed)
    state = fake.video
    login = fake.users[fake.user_id]["login"]
    with fake.lock:
        project = fake.create_project(
            name="benchmark video", workspace_id=fake.workspace_id, kind="videos"
        )
        pid = int(project["id"])
        meta = fake.set_meta(
            pid,
            {
                "classes": [
                    {"title": "car", "shape": "rectangle"},
                    {"title": "road", "shape": "polygon"},
                ],
                "tags": [{"name": "weather", "value_type": "any_string"}],
            },
        )
        car, road = meta["classes"]
        (weather,) = meta["tags"]
        datasets = [
            fake.create_dataset(pid, f"clips {n:02d}")["id"] for n in range(ENTITY_DATASETS)
        ]
        for n in range(math.ceil(figures / PER_VIDEO)):
            media = state.register_video(
                frames=FRAMES, width=WIDTH, height=HEIGHT, seed=f"bench-video:{n}"
            )
            video = state.create_video(
                datasets[n % ENTITY_DATASETS], f"clip_{n:06d}.mp4", media_hash=media
            )
            vid = video["id"]
            state.add_video_tag(
                vid, {"tagId": weather["id"], "value": "rain", "frameRange": [0, 9]}, login=login
            )
            for k in range(OBJECTS_PER_VIDEO):
                cls = car if k % 2 == 0 else road
                obj = state.create_object(vid, cls["id"], login=login)
                for frame in range(0, 2 * FIGURES_PER_OBJECT, 2):
                    shape = "rectangle" if cls is car else "polygon"
                    state.create_figure(
                        vid,
                        {
                            "objectId": obj["id"],
                            "geometryType": shape,
                            "geometry": _shape(rng, shape, WIDTH, HEIGHT),
                            "meta": {"frame": frame},
                        },
                        login=login,
                    )
    return pid


def fill_volume(fake: Any, figures: int, seed: int = 0) -> int:
    """A volume project of about ``figures`` figures (whole volumes) in the fake; returns
    its id."""
    from tests.fakes.supervisely_video import PLANES, nrrd_bytes

    rng = random.Random(seed)
    state = fake.video
    login = fake.users[fake.user_id]["login"]
    x, y, _ = VOLUME_DIMS
    with fake.lock:
        project = fake.create_project(
            name="benchmark volume", workspace_id=fake.workspace_id, kind="volumes"
        )
        pid = int(project["id"])
        meta = fake.set_meta(
            pid,
            {
                "classes": [
                    {"title": "organ", "shape": "polygon"},
                    {"title": "box", "shape": "rectangle"},
                    {"title": "tumour", "shape": "mask_3d"},
                ],
                "tags": [{"name": "phase", "value_type": "any_string"}],
            },
        )
        organ, box, tumour = meta["classes"]
        (phase,) = meta["tags"]
        datasets = [
            fake.create_dataset(pid, f"scans {n:02d}")["id"] for n in range(ENTITY_DATASETS)
        ]
        for n in range(math.ceil(figures / PER_VOLUME)):
            media, _ = state.register_volume(dims=VOLUME_DIMS, seed=f"bench-volume:{n}")
            vid = state.create_volume(datasets[n % ENTITY_DATASETS], f"ct_{n:06d}.nrrd", media)[
                "id"
            ]
            state.add_video_tag(vid, {"tagId": phase["id"], "value": "arterial"}, login=login)
            for cls, shape in ((organ, "polygon"), (box, "rectangle")):
                obj = state.create_object(vid, cls["id"], login=login)
                for index in range(PLANE_FIGURES_PER_VOLUME // 2):
                    state.create_figure(
                        vid,
                        {
                            "objectId": obj["id"],
                            "geometryType": shape,
                            "geometry": _shape(rng, shape, x, y),
                            "meta": {
                                "sliceIndex": index,
                                "planeName": "axial",
                                "normal": dict(PLANES["axial"]),
                            },
                        },
                        login=login,
                    )
            obj = state.create_object(vid, tumour["id"], login=login)
            mask = state.create_figure(
                vid, {"objectId": obj["id"], "geometryType": "mask_3d", "meta": {}}, login=login
            )
            state.masks[mask["id"]] = nrrd_bytes(rng, VOLUME_DIMS)
    return pid


def _shape(rng: random.Random, shape: str, width: int, height: int) -> dict[str, Any]:
    """A rectangle or a hexagon at sub-pixel coordinates inside a ``width`` x ``height``
    frame, also once rounded."""

    def xy() -> list[float]:
        return [rng.uniform(0, width - 1), rng.uniform(0, height - 1)]

    if shape == "rectangle":
        (x1, y1), (x2, y2) = xy(), xy()
        points = [[min(x1, x2), min(y1, y2)], [max(x1, x2), max(y1, y2)]]
    else:
        points = [xy() for _ in range(6)]
    return {"points": {"exterior": points, "interior": []}}


def figures_of(fake: Any, project_id: int) -> int:
    with fake.lock:
        figures = (
            fake.video.figures if fake.projects[project_id]["type"] != "images" else fake.figures
        )
        return sum(1 for f in figures.values() if f["projectId"] == project_id)


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        cells = [row[0].ljust(widths[0])]
        cells += [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
        print("| " + " | ".join(cells) + " |")


#: Partitioned captures measured beside the serial one: threads reading datasets side by side.
PARALLEL = (2, 4, 8)

#: The kinds of project measured, how the table names their items.
_ITEMS = {"image": "images", "video": "videos", "volume": "volumes"}


def measure(
    kind: str,
    pid: int,
    count: int,
    *,
    url: str,
    token: str,
    store: str,
    sdk: Any,
    fake: Any,
) -> dict[str, Measured]:
    """The five steps on one project: bare listing, labelvault capture and restore, the
    SDK's version.create and restore; each restored project is checked for every figure."""
    results: dict[str, Measured] = {}
    if kind == "image":
        results["listing"] = run_child("listing", url, pid, token=token)
    else:
        results["listing"] = run_child("entity-listing", url, pid, kind, token=token)
    assert results["listing"].answer["figures"] == count, results["listing"].answer
    results["capture"] = run_child("capture", url, pid, store, token=token)
    assert results["capture"].answer["figures"] == count, results["capture"].answer
    for parallel in PARALLEL:
        fresh = f"{store}-parallel-{parallel}"
        name = f"capture parallel {parallel}"
        results[name] = run_child("capture", url, pid, fresh, parallel, token=token)
        assert results[name].answer["figures"] == count, results[name].answer
    results["restore"] = run_child("restore", url, pid, store, token=token)
    restored = results["restore"].answer["project_id"]
    assert figures_of(fake, restored) == count, "labelvault restored another figure count"
    for parallel in PARALLEL:
        name = f"restore parallel {parallel}"
        results[name] = run_child("restore", url, pid, store, parallel, token=token)
        restored = results[name].answer["project_id"]
        assert figures_of(fake, restored) == count, f"{name} restored another figure count"
    results["create"] = sdk("create", project_id=pid, title=f"benchmark {kind}")
    version_id = results["create"].answer["version_id"]
    results["sdk restore"] = sdk("restore", project_id=pid, version_id=version_id)
    restored = results["sdk restore"].answer["project_id"]
    assert figures_of(fake, restored) == count, "the SDK restored another figure count"
    return results


def table_rows(
    kind: str, results: dict[str, Measured], count: int, sdk_version: str
) -> list[list[str]]:
    listing = {
        "image": "bare listing (httpx: datasets, images, figures pages)",
        "video": "bare listing (httpx: datasets, videos, annotations)",
        "volume": "bare listing (httpx: datasets, volumes, annotations, masks)",
    }[kind]
    lines = (
        (listing, "listing", "create"),
        ("labelvault capture", "capture", "create"),
        *(
            (
                f"labelvault create --parallel {n} (a partition a dataset)",
                f"capture parallel {n}",
                "create",
            )
            for n in PARALLEL
        ),
        (f"SDK {sdk_version} version.create", "create", "create"),
        ("labelvault restore", "restore", "sdk restore"),
        *(
            (
                f"labelvault restore --parallel {n} (item ranges)",
                f"restore parallel {n}",
                "sdk restore",
            )
            for n in PARALLEL
        ),
        (f"SDK {sdk_version} version.restore", "sdk restore", "sdk restore"),
    )
    rows = []
    for label, name, versus in lines:
        run, sdk_run = results[name], results[versus]
        for measure_name, seconds, sdk_seconds in (
            ("step alone", run.step, sdk_run.step),
            ("whole command", run.whole, sdk_run.whole),
        ):
            rows.append(
                [
                    f"{kind}: {label}, {measure_name}",
                    f"{seconds:.2f}",
                    f"{count / seconds:,.0f}",
                    f"{run.rss:.0f}",
                    f"{sdk_seconds / seconds:.2f}x",
                ]
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--figures", type=int, default=100_000)
    parser.add_argument("--video-figures", type=int, default=20_000)
    parser.add_argument("--volume-figures", type=int, default=10_000)
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, url, project, *rest = args.child
        if kind == "listing":
            result = child_listing(url, int(project))
        elif kind == "entity-listing":
            result = child_entity_listing(url, int(project), rest[0])
        elif kind == "capture":
            result = child_capture(url, int(project), rest[0], int(rest[1]) if rest[1:] else 1)
        else:
            result = child_restore(url, int(project), rest[0], int(rest[1]) if rest[1:] else 1)
        print(json.dumps(result))
        return

    from tests.fakes.supervisely import FakeSupervisely
    from tests.servers.supervisely_sdk import SDK_VERSION, ensure_installed, run_driver

    started = time.monotonic()
    venv = ensure_installed()
    fake = FakeSupervisely()
    projects = {
        "image": fill(fake, args.figures),
        "video": fill_video(fake, args.video_figures),
        "volume": fill_volume(fake, args.volume_figures),
    }
    counts = {kind: figures_of(fake, pid) for kind, pid in projects.items()}
    images = math.ceil(counts["image"] / PER_IMAGE)
    videos = math.ceil(counts["video"] / PER_VIDEO)
    volumes = math.ceil(counts["volume"] / PER_VOLUME)
    print(
        f"fake server: {counts['image']:,} figures on {images:,} images in {DATASETS} datasets, "
        f"{counts['video']:,} on {videos:,} videos and {counts['volume']:,} on {volumes:,} "
        f"volumes in {ENTITY_DATASETS} datasets each, made in "
        f"{time.monotonic() - started:.1f} s"
    )
    results: dict[str, dict[str, Measured]] = {}
    capture_bytes: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="labelvault-bench-sly-") as tmp, fake.serve() as url:
        token = fake.token

        def sdk(step: str, **step_args: Any) -> Measured:
            quiet_server_heap()
            run = run_driver(
                venv,
                step,
                url=url,
                token=token,
                scratch=Path(tmp) / "sdk",
                timeout=TIMEOUT,
                **step_args,
            )
            return Measured(run.answer["seconds"], run.wall, run.peak_rss_mb, run.answer)

        for kind, pid in projects.items():
            results[kind] = measure(
                kind,
                pid,
                counts[kind],
                url=url,
                token=token,
                store=str(Path(tmp) / f"store-{kind}"),
                sdk=sdk,
                fake=fake,
            )
            capture_bytes[kind] = results[kind]["capture"].answer["bytes"]

    rows = [
        row
        for kind in projects
        for row in table_rows(kind, results[kind], counts[kind], SDK_VERSION)
    ]
    print()
    print(
        f"Supervisely projects on the fake server on 127.0.0.1; {os.cpu_count()} cores:\n"
        f"- image: {counts['image']:,} figures ({PER_IMAGE} per image, sub-pixel rectangles "
        "and polygons);\n"
        f"- video: {counts['video']:,} figures ({PER_VIDEO} per video of {FRAMES} frames, "
        f"{OBJECTS_PER_VIDEO} objects, sub-pixel rectangles and polygons);\n"
        f"- volume: {counts['volume']:,} figures ({PLANE_FIGURES_PER_VOLUME} plane figures "
        f"and one 3D mask per {'x'.join(map(str, VOLUME_DIMS))} volume)"
    )
    print_table(["tool / step", "seconds", "figures/s", "peak RSS MB", "vs SDK"], rows)
    print()
    print(
        "peak RSS: the process's own, whole command (the same process for both rows); "
        "labelvault wrote "
        + ", ".join(f"{capture_bytes[k] / 1e6:.1f} MB ({k})" for k in projects)
        + " to its store"
    )
    print(f"(total {time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
