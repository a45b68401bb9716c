"""Label Studio: labelvault capture and restore next to Label Studio's own export and import.

Starts its own Label Studio server (the test suite's start/stop code, installing Label Studio
into the repository's cache when missing), fills a project with N tasks (one box annotation
and one prediction each) by bulk import, and prints one table:

- Label Studio's snapshot export (``POST /api/projects/{id}/exports/`` + download);
- the bare paginated listing ``/api/tasks?fields=all`` (page size 1000);
- labelvault capture (``iter_pages`` run to the end, in a child process, with its peak RSS),
  in export mode (the default) and in list mode;
- the bare bulk import (one request) and labelvault restore (from a snapshot on disk).

Run: ``uv run python benchmarks/labelstudio.py [--tasks 10000]``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from labelvault.platforms.labelstudio import (  # noqa: E402
    LabelStudioOptions,
    LabelStudioPlatform,
)
from labelvault.snapshot import (  # noqa: E402
    SnapshotReader,
    SnapshotWriter,
    load_manifest,
    write_manifest,
)
from labelvault.storage.local import LocalStore  # noqa: E402
from tests.servers.labelstudio import LS_VERSION, LabelStudio, start_server  # noqa: E402

CONFIG = (
    '<View><Image name="image" value="$image"/><RectangleLabels name="label" toName="image">'
    '<Label value="cat"/><Label value="dog"/></RectangleLabels></View>'
)


def _tasks(count: int) -> list[dict[str, Any]]:
    def box(i: int, label: str) -> list[dict[str, Any]]:
        return [
            {
                "id": f"r{i}",
                "from_name": "label",
                "to_name": "image",
                "type": "rectanglelabels",
                "original_width": 640,
                "original_height": 480,
                "image_rotation": 0,
                "value": {
                    "x": 10.0 + i % 50,
                    "y": 20.25,
                    "width": 30.0,
                    "height": 40.0,
                    "rotation": 0,
                    "rectanglelabels": [label],
                },
            }
        ]

    return [
        {
            "data": {"image": f"http://example.invalid/img/{i}.jpg", "n": i},
            "annotations": [{"result": box(i, "cat"), "ground_truth": False, "lead_time": 1.5}],
            "predictions": [{"result": box(i, "dog"), "score": 0.5, "model_version": "m1"}],
        }
        for i in range(count)
    ]


@dataclass(frozen=True)
class Run:
    """One measured run: wall seconds, the server's CPU seconds, the client's peak RSS."""

    wall: float
    server_cpu: float
    rss: float | None


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _capture_child(url: str, token: str, project: str, mode: str, store_root: str | None) -> Any:
    options = LabelStudioOptions(capture_mode=mode)  # type: ignore[arg-type]
    with LabelStudioPlatform(url, token, options=options) as ls:
        started = time.monotonic()
        rows: dict[str, int] = {}
        writer = None
        if store_root:
            store = LocalStore(store_root)
            source = {"platform": ls.name, "instance": ls.instance, "project_id": project}
            writer = SnapshotWriter(store, "bench", source=source)
        for page in ls.iter_pages(project):
            rows[page.table] = rows.get(page.table, 0) + page.batch.num_rows
            if writer is not None:
                writer.write(page.table, page.batch)
        manifest_key = None
        if writer is not None:
            manifest_key = write_manifest(store, "bench", writer.finish())
        return time.monotonic() - started, rows, _peak_rss_mb(), manifest_key


def _restore_child(url: str, token: str, store_root: str, manifest_key: str) -> Any:
    store = LocalStore(store_root)
    reader = SnapshotReader(store, load_manifest(store, manifest_key))
    with LabelStudioPlatform(url, token) as ls:
        started = time.monotonic()
        result = ls.restore(reader.iter_batches, title="benchmark restore")
        return time.monotonic() - started, result.counts, _peak_rss_mb()


def _in_child(func: Any, *args: Any) -> Any:
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        return pool.apply(func, args)


def _import(client: httpx.Client, title: str, body: bytes) -> tuple[int, float]:
    project = client.post("/api/projects", json={"title": title, "label_config": CONFIG})
    project.raise_for_status()
    project_id = int(project.json()["id"])
    started = time.monotonic()
    answer = client.post(
        f"/api/projects/{project_id}/import",
        content=body,
        headers={"Content-Type": "application/json"},
    )
    answer.raise_for_status()
    return project_id, time.monotonic() - started


#: Label Studio's export with the same content labelvault captures (prediction bodies, drafts).
FULL = {
    "drafts": {"only_id": False},
    "predictions": {"only_id": False},
    "annotations__completed_by": {"only_id": False},
}


def _export(
    client: httpx.Client, project_id: int, options: dict[str, Any] | None = None
) -> tuple[float, int]:
    started = time.monotonic()
    body: dict[str, Any] = {"title": "bench"}
    if options:
        body["serialization_options"] = options
    export = client.post(f"/api/projects/{project_id}/exports/", json=body)
    export.raise_for_status()
    export_id = export.json()["id"]
    size = 0
    with client.stream(
        "GET",
        f"/api/projects/{project_id}/exports/{export_id}/download",
        params={"exportType": "JSON"},
    ) as response:
        response.raise_for_status()
        for chunk in response.iter_bytes(1 << 20):
            size += len(chunk)
    elapsed = time.monotonic() - started
    client.delete(f"/api/projects/{project_id}/exports/{export_id}")
    return elapsed, size


def _listing(client: httpx.Client, project_id: int, page_size: int = 1000) -> float:
    started = time.monotonic()
    seen, page = 0, 1
    while True:
        response = client.get(
            "/api/tasks",
            params={"project": project_id, "page": page, "page_size": page_size, "fields": "all"},
        )
        if response.status_code == 404:
            break
        response.raise_for_status()
        payload = response.json()
        seen += len(payload["tasks"])
        if seen >= payload["total"]:
            break
        page += 1
    return time.monotonic() - started


def _server_rss_mb(server: LabelStudio) -> float:
    process = psutil.Process(server.pid)
    total = process.memory_info().rss
    for child in process.children(recursive=True):
        total += child.memory_info().rss
    return total / 1024 / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument(
        "--repeat",
        type=int,
        default=2,
        help="runs of each compared pair, alternated; the table shows the best run",
    )
    args = parser.parse_args()
    count = args.tasks

    runs: dict[str, list[Run]] = {}

    def measure(name: str, server: LabelStudio, func: Any, *func_args: Any) -> Any:
        """Run ``func``; record its wall time (as it reports it) and the server's CPU time."""
        process = psutil.Process(server.pid)
        cpu = sum(process.cpu_times()[:2])
        result = func(*func_args)
        wall, rss = result[0], result[-1] if name.startswith("labelvault") else None
        runs.setdefault(name, []).append(
            Run(wall=wall, server_cpu=sum(process.cpu_times()[:2]) - cpu, rss=rss)
        )
        return result

    with tempfile.TemporaryDirectory(prefix="labelvault-bench-") as tmp:
        started = time.monotonic()
        server = start_server(Path(tmp) / "ls")
        print(f"Label Studio {LS_VERSION} started in {time.monotonic() - started:.1f} s")
        try:
            client = server.client(timeout=1800.0)
            body = json.dumps(_tasks(count)).encode()
            project_id, first_import = _import(client, "bench source", body)
            print(f"source project: {count} tasks imported in {first_import:.1f} s")
            url, token, project = server.base_url, server.token, str(project_id)
            store_root = str(Path(tmp) / "store")
            export_mb: dict[str, float] = {}

            def export(options: dict[str, Any] | None) -> tuple[float, None]:
                seconds, size = _export(client, project_id, options)
                export_mb["full" if options else "default"] = size / 1e6
                return seconds, None

            def capture(mode: str, root: str | None) -> tuple[float, float]:
                seconds, rows, rss, key = _in_child(_capture_child, url, token, project, mode, root)
                assert rows["items"] == count, rows
                manifests[mode if root is None else "written"] = key
                return seconds, rss

            manifests: dict[str, str | None] = {}
            for _ in range(args.repeat):
                measure("export", server, export, None)
                measure("labelvault capture", server, capture, "export", None)
                measure("export full", server, export, FULL)
            measure("listing", server, lambda: (_listing(client, project_id), None))
            measure("labelvault capture list", server, capture, "list", None)
            measure("labelvault capture write", server, capture, "export", store_root)
            manifest_key = manifests["written"]

            def restore() -> tuple[float, float]:
                seconds, counts, rss = _in_child(
                    _restore_child, url, token, store_root, manifest_key
                )
                assert counts["tasks"] == count, counts
                return seconds, rss

            for run in range(args.repeat):
                measure(
                    "import",
                    server,
                    lambda run=run: (_import(client, f"bench bare import {run}", body)[1], None),
                )
                measure("labelvault restore", server, restore)
            server_rss = _server_rss_mb(server)
            client.close()
        finally:
            server.stop()

    best = {name: min(values, key=lambda run: run.wall) for name, values in runs.items()}
    n = f"best of {args.repeat}"
    lines = [
        (
            f"Label Studio snapshot export, POST + download ({export_mb['default']:.1f} MB, {n})",
            "export",
        ),
        (
            f"Label Studio snapshot export, predictions + drafts expanded "
            f"({export_mb['full']:.1f} MB, {n})",
            "export full",
        ),
        (f"labelvault capture, export mode: iter_pages to the end ({n})", "labelvault capture"),
        ("bare listing /api/tasks?fields=all, page_size 1000", "listing"),
        ("labelvault capture, list mode: iter_pages to the end", "labelvault capture list"),
        ("labelvault capture + snapshot write to a local store", "labelvault capture write"),
        (f"bare bulk import, one request ({n})", "import"),
        (f"labelvault restore from the local snapshot ({n})", "labelvault restore"),
    ]
    width = max(len(label) for label, _ in lines)
    print()
    print(
        f"Label Studio {LS_VERSION} (label-studio start, SQLite), {count:,} tasks with 1 box "
        "annotation + 1 prediction each"
    )
    print(
        f"{'operation':<{width}}  {'seconds':>8}  {'tasks/s':>8}  {'server CPU s':>12}  "
        f"{'client peak RSS':>15}"
    )
    for label, name in lines:
        run = best[name]
        rss = f"{run.rss:>12.0f} MB" if run.rss is not None else ""
        print(
            f"{label:<{width}}  {run.wall:>8.2f}  {count / run.wall:>8,.0f}  "
            f"{run.server_cpu:>12.2f}  {rss:>15}"
        )
    print()

    def ratio(slow: str, fast: str) -> str:
        return f"{best[slow].wall / best[fast].wall:.2f}x"

    for label, slow, fast in (
        ("capture speed / Label Studio export speed", "export", "labelvault capture"),
        ("capture speed / same-content export speed", "export full", "labelvault capture"),
        ("restore speed / bare bulk import speed", "import", "labelvault restore"),
    ):
        print(f"{label}: {ratio(slow, fast)}")
    print("all runs (wall s / server CPU s):")
    for name, values in runs.items():
        shown = ", ".join(f"{run.wall:.2f}/{run.server_cpu:.2f}" for run in values)
        print(f"  {name}: {shown}")
    print(f"Label Studio server RSS at the end: {server_rss:.0f} MB")


if __name__ == "__main__":
    main()
