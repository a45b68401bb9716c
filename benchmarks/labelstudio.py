"""Label Studio: labelvault capture and restore next to Label Studio's own export and import.

Starts its own Label Studio server (the test suite's start/stop code, installing Label Studio
into the repository's cache when missing), fills a project with N tasks (one box annotation
and one prediction each) by bulk import, and prints one table per server:

- Label Studio's snapshot export (``POST /api/projects/{id}/exports/`` + download);
- the bare paginated listing ``/api/tasks?fields=all`` (page size 1000);
- labelvault capture (``iter_pages`` run to the end, in a child process, with its peak RSS),
  in export mode (with one or several range exports built at once) and in list mode (the
  default);
- ``labelvault create --parallel N`` for N = 1, 2, 4, 8: the project as eight task id ranges
  read by N threads, merged and committed into a fresh store;
- the bare bulk import (one request) and labelvault restore (from a snapshot on disk).

Servers (``--server``): ``runserver`` is ``label-studio start`` (Django's development server,
one process, SQLite), as the tests run it; ``postgres`` is Label Studio the way teams deploy
it, on PostgreSQL under gunicorn with 4 workers (needs PostgreSQL's ``initdb`` and
``postgres``; gunicorn is added to Label Studio's venv).

Run: ``uv run python benchmarks/labelstudio.py [--tasks 10000] [--server runserver postgres]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import resource
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from devstack.labelstudio import (  # noqa: E402
    LS_VERSION,
    LabelStudio,
    start_server,
    start_wsgi_server,
)
from labelvault.models import RestoreOptions, VersionOrigin  # noqa: E402
from labelvault.platforms.labelstudio import (  # noqa: E402
    LabelStudioOptions,
    LabelStudioPlatform,
)
from labelvault.restore import restore_version  # noqa: E402
from labelvault.snapshot.manifest import load_manifest, write_manifest  # noqa: E402
from labelvault.snapshot.reader import SnapshotReader  # noqa: E402
from labelvault.snapshot.writer import SnapshotWriter  # noqa: E402
from labelvault.storage.local import LocalStore  # noqa: E402
from labelvault.vault import Vault  # noqa: E402
from tests.servers.postgres import start_postgres  # noqa: E402

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


def _capture_child(
    url: str, token: str, project: str, options: dict[str, Any], store_root: str | None
) -> Any:
    with LabelStudioPlatform(url, token, options=LabelStudioOptions(**options)) as ls:
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


#: Partitioned captures measured: threads reading task id ranges side by side.
PARALLEL = (1, 2, 4, 8)


def _create_child(url: str, token: str, project: str, parallel: int, store_root: str) -> Any:
    """``labelvault create --parallel N`` into a fresh local store: plan, partitions, merge,
    commit; each partition a task id range of an eighth of the project."""
    with LabelStudioPlatform(url, token) as probe:
        total = probe.get_project(project).counts.get("items", 0)
    options = LabelStudioOptions(export_partition_tasks=max(1, -(-total // max(PARALLEL))))
    with (
        LabelStudioPlatform(url, token, options=options) as ls,
        Vault(LocalStore(store_root)) as vault,
    ):
        started = time.monotonic()
        result = vault.capture(ls, project, parallel=parallel)
        return time.monotonic() - started, result.rows, _peak_rss_mb()


def _restore_child(url: str, token: str, store_root: str, manifest_key: str) -> Any:
    store = LocalStore(store_root)
    reader = SnapshotReader(store, load_manifest(store, manifest_key))
    with LabelStudioPlatform(url, token) as ls:
        started = time.monotonic()
        result = restore_version(
            ls,
            reader.iter_batches,
            store=store,
            journal=f"bench/restores/{uuid.uuid4().hex}",
            origin=VersionOrigin(source_project_id="bench", version_number=1),
            options=RestoreOptions(project_name=f"benchmark restore {uuid.uuid4().hex[:8]}"),
        )
        return time.monotonic() - started, result.created, _peak_rss_mb()


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


def _server_total(server: LabelStudio, measure: Callable[[psutil.Process], float]) -> float:
    """``measure`` summed over the server's process tree (gunicorn's workers included)."""
    process = psutil.Process(server.pid)
    total = measure(process)
    for child in process.children(recursive=True):
        try:
            total += measure(child)
        except psutil.NoSuchProcess:
            continue
    return total


def _server_cpu(server: LabelStudio) -> float:
    return _server_total(server, lambda process: sum(process.cpu_times()[:2]))


def _server_rss_mb(server: LabelStudio) -> float:
    return _server_total(server, lambda process: process.memory_info().rss) / 1024 / 1024


#: The capture variants measured on each server: (label, options, which servers).
CAPTURES: tuple[tuple[str, dict[str, Any], tuple[str, ...]], ...] = (
    (
        "labelvault capture, export mode, 2 exports at once",
        {"capture_mode": "export"},
        ("runserver", "postgres"),
    ),
    (
        "labelvault capture, export mode, 1 export at a time",
        {"capture_mode": "export", "export_concurrency": 1},
        ("runserver", "postgres"),
    ),
    (
        "labelvault capture, export mode, 3 exports at once",
        {"capture_mode": "export", "export_concurrency": 3},
        ("postgres",),
    ),
)


@contextlib.contextmanager
def _server(kind: str, root: Path) -> Iterator[LabelStudio]:
    """A Label Studio of ``kind`` under ``root``, stopped (with its database) on exit."""
    if kind == "runserver":
        server = start_server(root / "ls")
        try:
            yield server
        finally:
            server.stop()
        return
    # PostgreSQL runs as its own user when we are root, so its data dir sits directly in the
    # temp dir (``root`` is private to us).
    with tempfile.TemporaryDirectory(prefix="labelvault-bench-pg-") as pg_dir:
        database = start_postgres(Path(pg_dir))
        try:
            server = start_wsgi_server(root / "ls", database, workers=4)
            try:
                yield server
            finally:
                server.stop()
        finally:
            database.stop()


def _bench_server(kind: str, count: int, repeat: int) -> None:
    runs: dict[str, list[Run]] = {}

    def measure(name: str, server: LabelStudio, func: Any, *func_args: Any) -> Any:
        """Run ``func``; record its wall time (as it reports it) and the server's CPU time."""
        cpu = _server_cpu(server)
        result = func(*func_args)
        wall, rss = result[0], result[-1] if name.startswith("labelvault") else None
        runs.setdefault(name, []).append(
            Run(wall=wall, server_cpu=_server_cpu(server) - cpu, rss=rss)
        )
        return result

    captures = [(label, options) for label, options, kinds in CAPTURES if kind in kinds]
    with tempfile.TemporaryDirectory(prefix="labelvault-bench-") as tmp:
        started = time.monotonic()
        with _server(kind, Path(tmp)) as server:
            print(
                f"Label Studio {LS_VERSION} ({kind}) started in {time.monotonic() - started:.1f} s"
            )
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

            def capture(options: dict[str, Any], root: str | None) -> tuple[float, float]:
                seconds, rows, rss, key = _in_child(
                    _capture_child, url, token, project, options, root
                )
                assert rows["items"] == count, rows
                manifests[root] = key
                return seconds, rss

            manifests: dict[str | None, str | None] = {}
            for _ in range(repeat):
                measure("export", server, export, None)
                for label, options in captures:
                    measure(label, server, capture, options, None)
                measure("export full", server, export, FULL)
            measure("listing", server, lambda: (_listing(client, project_id), None))
            measure("labelvault capture list", server, capture, {"capture_mode": "list"}, None)
            measure("labelvault capture write", server, capture, {}, store_root)
            for parallel in PARALLEL:

                def create(parallel: int = parallel) -> tuple[float, float]:
                    root = str(Path(tmp) / f"store-parallel-{parallel}-{uuid.uuid4().hex}")
                    seconds, rows, rss = _in_child(
                        _create_child, url, token, project, parallel, root
                    )
                    assert rows["items"] == count, rows
                    return seconds, rss

                measure(f"labelvault parallel {parallel}", server, create)
            manifest_key = manifests[store_root]

            def restore() -> tuple[float, float]:
                seconds, counts, rss = _in_child(
                    _restore_child, url, token, store_root, manifest_key
                )
                assert counts["items"] == count, counts
                return seconds, rss

            for run in range(repeat):
                measure(
                    "import",
                    server,
                    lambda run=run: (_import(client, f"bench bare import {run}", body)[1], None),
                )
                measure("labelvault restore", server, restore)
            server_rss = _server_rss_mb(server)
            client.close()

    best = {name: min(values, key=lambda run: run.wall) for name, values in runs.items()}
    n = f"best of {repeat}"
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
        *((f"{label}: iter_pages to the end ({n})", label) for label, _ in captures),
        ("bare listing /api/tasks?fields=all, page_size 1000", "listing"),
        ("labelvault capture, list mode: iter_pages to the end", "labelvault capture list"),
        ("labelvault capture + snapshot write to a local store", "labelvault capture write"),
        *(
            (
                f"labelvault create --parallel {n} (8 task id ranges), list mode, committed",
                f"labelvault parallel {n}",
            )
            for n in PARALLEL
        ),
        (f"bare bulk import, one request ({n})", "import"),
        (f"labelvault restore from the local snapshot ({n})", "labelvault restore"),
    ]
    width = max(len(label) for label, _ in lines)
    described = {
        "runserver": "label-studio start: one process, SQLite",
        "postgres": "gunicorn, 4 workers, PostgreSQL",
    }[kind]
    print()
    print(
        f"Label Studio {LS_VERSION} ({described}), {count:,} tasks with 1 box annotation "
        "+ 1 prediction each"
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
    for label, _ in captures:
        print(
            f"{label} / Label Studio export, speed: {best['export'].wall / best[label].wall:.2f}x"
        )
        print(
            f"{label} / same-content export, speed: "
            f"{best['export full'].wall / best[label].wall:.2f}x"
        )
    for n in PARALLEL:
        print(
            f"create --parallel {n} / Label Studio export, speed: "
            f"{best['export'].wall / best[f'labelvault parallel {n}'].wall:.2f}x"
        )
    print(
        "restore / bare bulk import, speed: "
        f"{best['import'].wall / best['labelvault restore'].wall:.2f}x"
    )
    print("all runs (wall s / server CPU s):")
    for name, values in runs.items():
        shown = ", ".join(f"{run.wall:.2f}/{run.server_cpu:.2f}" for run in values)
        print(f"  {name}: {shown}")
    print(f"Label Studio server RSS at the end: {server_rss:.0f} MB")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument(
        "--repeat",
        type=int,
        default=2,
        help="runs of each compared pair, alternated; the tables show the best run",
    )
    parser.add_argument(
        "--server",
        nargs="+",
        choices=("runserver", "postgres"),
        default=["runserver"],
        help="which Label Studio deployments to measure, one table each",
    )
    args = parser.parse_args()
    for kind in args.server:
        _bench_server(kind, args.tasks, args.repeat)


if __name__ == "__main__":
    main()
