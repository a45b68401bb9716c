"""``make demo``: capture, edit, capture, diff, query, restore and expire a project, for real.

A fake Supervisely server (``tests/fakes/supervisely.py``) serves a generated project on
127.0.0.1; the real ``labelvault`` command line runs against it, one subprocess per command,
each printed before it runs, like a shell session. Versions go to a local folder
(``./demo-store``, wiped first). The demo exits non-zero when a command fails or when the
restored project's content hash differs from the version it was restored from.

Size: ``--images-per-dataset N`` (or env ``LABELVAULT_DEMO_IMAGES_PER_DATASET``); the project has
six datasets, about 3.5 figures and 7 tag assignments per image.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labelvault.models import ProjectRef
from labelvault.platforms.base import instance_from_url
from labelvault.storage import LocalStore
from labelvault.vault import Vault
from tests.fakes.supervisely import FakeSupervisely, generate_rich_project

REPO = Path(__file__).resolve().parents[1]
DEFAULT_STORE = REPO / "demo-store"
SIZE_ENV = "LABELVAULT_DEMO_IMAGES_PER_DATASET"
DEFAULT_IMAGES_PER_DATASET = 700
EDIT_SHARE = 0.01
#: the server's page size for requests that name none (``figures.list``): fewer round trips
DEMO_PER_PAGE = 1000
PLATFORM = "supervisely"
CLASS_COUNTS_SQL = (
    "SELECT class_name, geometry_type, count(*) AS annotations "
    "FROM annotations GROUP BY ALL ORDER BY annotations DESC, class_name"
)


class DemoFailed(Exception):
    """A step of the demo failed; the message says which."""


@dataclass
class Shell:
    """Runs ``labelvault`` commands as subprocesses and prints them like a shell session."""

    env: dict[str, str]
    steps: list[tuple[str, float]] = field(default_factory=list)

    def say(self, text: str) -> None:
        """A comment line in the transcript."""
        print(f"\n# {text}", flush=True)

    def labelvault(self, *args: str) -> str:
        """Run ``labelvault ARGS``, echo its output, return it; raise on a non-zero exit."""
        shown = shlex.join(["labelvault", *args])
        print(f"$ {shown}", flush=True)
        started = time.monotonic()
        process = subprocess.Popen(
            [sys.executable, "-m", "labelvault", *args],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
            errors="replace",
        )
        assert process.stdout is not None
        lines = []
        with process.stdout:
            for line in process.stdout:
                print(line, end="", flush=True)
                lines.append(line)
        code = process.wait()
        self.steps.append((shown, time.monotonic() - started))
        if code != 0:
            raise DemoFailed(f"`{shown}` exited with code {code}")
        return "".join(lines)


def edit_annotations(fake: FakeSupervisely, project_id: int, share: float) -> tuple[int, int]:
    """Move ``share`` of the project's figures by half a pixel, as a labeler fixing one run of
    images would: consecutive images of one dataset. Returns (edited, total figures)."""
    with fake.lock:
        figures = [f for f in fake.figures.values() if f["projectId"] == project_id]
        wanted = max(1, round(len(figures) * share))
        editable: dict[int, list[dict[str, Any]]] = {}
        for figure in figures:
            if _points(figure) is not None:
                editable.setdefault(figure["entityId"], []).append(figure)
        images = sorted(editable, key=lambda image: (fake.images[image]["datasetId"], image))
        dataset = max(
            {fake.images[image]["datasetId"] for image in images},
            key=lambda ds: sum(1 for image in images if fake.images[image]["datasetId"] == ds),
        )
        run = [image for image in images if fake.images[image]["datasetId"] == dataset]
        start = len(run) // 3
        edited = 0
        for image in [*run[start:], *run[:start]]:
            for figure in sorted(editable[image], key=lambda f: f["id"]):
                if edited >= wanted:
                    break
                points = _points(figure)
                assert points is not None
                figure["geometry"]["points"]["exterior"] = [[x + 0.5, y + 0.5] for x, y in points]
                figure["updatedAt"] = fake.tick()
                edited += 1
            if edited >= wanted:
                break
        fake.touch_project(project_id)
    return edited, len(figures)


def _points(figure: dict[str, Any]) -> list[list[float]] | None:
    geometry = figure.get("geometry")
    if not isinstance(geometry, dict):
        return None
    points = geometry.get("points")
    if not isinstance(points, dict) or not isinstance(points.get("exterior"), list):
        return None
    exterior: list[list[float]] = points["exterior"]
    return exterior if all(len(xy) == 2 for xy in exterior) else None


def _wipe(store: Path) -> None:
    """Empty the demo store; refuse a folder that does not look like one."""
    if store.exists():
        entries = {entry.name for entry in store.iterdir()}
        if entries and not entries & {".labelvault", PLATFORM}:
            raise DemoFailed(f"{store} is not empty and is not a labelvault store; not wiping it")
        shutil.rmtree(store)
    store.mkdir(parents=True)


def _size(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024:
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} TiB"


def run_demo(images_per_dataset: int, store: Path) -> int:
    """The whole demo; returns the exit code."""
    started = time.monotonic()
    _wipe(store)
    fake = FakeSupervisely(default_per_page=DEMO_PER_PAGE)
    print(f"# generating a project: 6 datasets × {images_per_dataset:,} images …", flush=True)
    rich = generate_rich_project(fake, images_per_dataset=images_per_dataset, name="Street scenes")
    pid = rich.project_id
    images = sum(1 for i in fake.images.values() if i["projectId"] == pid)
    figures = sum(1 for f in fake.figures.values() if f["projectId"] == pid)
    tags = sum(len(tags) for tags in fake.image_tags.values()) + sum(
        len(tags) for tags in fake.figure_tags.values()
    )
    print(
        f"# project {pid}: {images:,} images, {figures:,} figures, {tags:,} tag assignments "
        f"({time.monotonic() - started:.1f} s)",
        flush=True,
    )
    with fake.serve() as url:
        env = {
            **os.environ,
            "LABELVAULT_STORE_URL": str(store),
            "LABELVAULT_SUPERVISELY_URL": url,
            "LABELVAULT_SUPERVISELY_TOKEN": fake.token,
            "COLUMNS": os.environ.get("COLUMNS", "140"),
            "PYTHONIOENCODING": "utf-8",
        }
        for name in ("LABELVAULT_PLATFORM",):
            env.pop(name, None)
        shell = Shell(env)
        print(f"$ export LABELVAULT_STORE_URL={shlex.quote(str(store))}")
        print(f"$ export LABELVAULT_SUPERVISELY_URL={url}")
        print("$ export LABELVAULT_SUPERVISELY_TOKEN=…  # the fake server's token, never printed")
        outcome = _session(shell, fake, pid, share=EDIT_SHARE)
        facts = read_facts(store, url, pid, outcome["restored"])
    print_summary(shell, outcome, facts, images=images, seconds=time.monotonic() - started)
    if facts.v1_hash != facts.restored_hash:
        print("\ndemo FAILED: the restored project's content differs", file=sys.stderr)
        return 1
    return 0


def _session(shell: Shell, fake: FakeSupervisely, pid: int, *, share: float) -> dict[str, Any]:
    project = str(pid)
    shell.say("capture the project as version 1")
    shell.labelvault("create", project, "--title", "baseline")

    edited, total = edit_annotations(fake, pid, share)
    shell.say(f"a labeler moves {edited:,} of {total:,} annotations ({edited / total:.1%})")
    shell.labelvault("create", project, "--title", "after review")

    shell.say("nothing changed since: capturing again writes nothing")
    shell.labelvault("create", project)

    shell.say("the project's history")
    shell.labelvault("versions", project)

    shell.say("what changed between version 1 and version 2")
    shell.labelvault("diff", project, "1", "2")

    shell.say("SQL over a version: annotations per class")
    shell.labelvault("query", project, CLASS_COUNTS_SQL, "--version", "2")

    shell.say("restore version 1 (before the review) as a new project")
    output = shell.labelvault("restore", project, "1")
    found = re.search(r"as project (\d+)", output)
    if found is None:
        raise DemoFailed("the restore did not say which project it created")
    restored = found.group(1)

    shell.say("capture the restored project: its content hash must equal version 1's")
    shell.labelvault("create", restored, "--title", "restored from version 1")

    shell.say("retention: keep only the last version (dry run)")
    shell.labelvault("expire", project, "--keep-last", "1")
    return {"project": project, "restored": restored, "edited": edited, "figures": total}


@dataclass(frozen=True)
class Facts:
    """What the store says after the session."""

    v1_written: int
    v2_written: int
    v2_bytes: int
    v1_hash: str
    v2_hash: str
    restored_hash: str
    versions: int


def read_facts(store: Path, url: str, pid: int, restored: str) -> Facts:
    """Read the versions the session made back from the store (not from the CLI's output)."""
    instance = instance_from_url(url)
    local = LocalStore(store)
    try:
        vault = Vault(local)
        source = ProjectRef(platform=PLATFORM, instance=instance, project_id=str(pid))
        copy = ProjectRef(platform=PLATFORM, instance=instance, project_id=restored)
        v1, v2 = vault.version(source, 1), vault.version(source, 2)
        m1, m2 = vault.manifest(v1), vault.manifest(v2)
        return Facts(
            v1_written=m1.bytes_written,
            v2_written=m2.bytes_written,
            v2_bytes=m2.data_bytes,
            v1_hash=v1.content_hash,
            v2_hash=v2.content_hash,
            restored_hash=vault.version(copy).content_hash,
            versions=len(vault.catalog.list(source)),
        )
    finally:
        local.close()


def print_summary(
    shell: Shell, outcome: dict[str, Any], facts: Facts, *, images: int, seconds: float
) -> None:
    """The closing summary."""
    same = facts.v1_hash == facts.restored_hash
    share = facts.v2_written / facts.v2_bytes if facts.v2_bytes else 0.0
    command_seconds = sum(step[1] for step in shell.steps)
    print("\n# summary")
    print(f"  project            {images:,} images, {outcome['figures']:,} figures")
    print(f"  version 1          {_size(facts.v1_written)} written")
    print(
        f"  version 2          {outcome['edited']:,} annotations edited, "
        f"{_size(facts.v2_written)} written ({share:.1%} of {_size(facts.v2_bytes)})"
    )
    print(f"  versions kept      {facts.versions} (the third capture found no change)")
    print(f"  restored project   {outcome['restored']}")
    print(f"  version 1 hash     {facts.v1_hash}")
    print(f"  version 2 hash     {facts.v2_hash}")
    print(f"  restored hash      {facts.restored_hash}")
    print(f"  round trip         {'identical content' if same else 'CONTENT DIFFERS'}")
    print(
        f"  time               {seconds:.1f} s in all, {len(shell.steps)} commands "
        f"{command_seconds:.1f} s"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments and run the demo."""
    parser = argparse.ArgumentParser(prog="python -m demo.run", description=__doc__)
    parser.add_argument(
        "--images-per-dataset",
        type=int,
        default=int(os.environ.get(SIZE_ENV, DEFAULT_IMAGES_PER_DATASET)),
        help=f"project size (default {DEFAULT_IMAGES_PER_DATASET}, env {SIZE_ENV})",
    )
    parser.add_argument(
        "--store", type=Path, default=DEFAULT_STORE, help="the store folder (wiped first)"
    )
    args = parser.parse_args(argv)
    if args.images_per_dataset < 1:
        parser.error("--images-per-dataset must be at least 1")
    try:
        return run_demo(args.images_per_dataset, args.store.resolve())
    except DemoFailed as exc:
        print(f"\ndemo FAILED: {exc}", file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
