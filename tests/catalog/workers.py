"""Code that runs in other threads and processes (spawned: they import this module).

The race workers log, to one append-only file shared by every worker, a ``start`` line right
after ``reserve`` returns and an ``end`` line right before ``commit``: both moments lie inside
the time the worker holds the lease, so if two workers ever held it at once their lines could
interleave. Each line is one ``os.write`` on an ``O_APPEND`` descriptor, so lines from
different processes never tear and their order in the file is the order they happened in.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from labelvault.catalog import Catalog, Reservation, ReserveWait
from labelvault.models import ProjectRef
from tests.catalog.backends import StoreSpec, open_spec

#: Short delays: many workers contend, and each holds the lease for a moment only.
RACE_WAIT = ReserveWait(initial=0.005, factor=2, max_delay=0.1, max_wait=120, jitter=0.5)


def log_event(log: str, event: str, worker: str, token: str) -> None:
    """Append one line to the shared holder log."""
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{event} {worker} {token}\n".encode())
    finally:
        os.close(fd)


def race_worker(
    catalog: Catalog, project: ProjectRef, worker: str, rounds: int, log: str
) -> list[tuple[int, str]]:
    """Reserve → do some work → commit, ``rounds`` times; return (number, content hash) each."""
    committed: list[tuple[int, str]] = []
    for round_number in range(rounds):
        reserved = catalog.reserve(project, holder=worker)
        assert isinstance(reserved, Reservation)
        log_event(log, "start", worker, reserved.commit_token)
        content = f"{worker}-{round_number}"  # unique per worker and round: never "no change"
        chunk = f"{project.prefix}/chunks/{content}.parquet"
        catalog.store.put_if_absent(chunk, content.encode())  # the capture's work, held
        catalog.store.get(chunk)
        log_event(log, "end", worker, reserved.commit_token)
        result = catalog.commit(
            reserved,
            manifest_key=f"{project.prefix}/manifests/{content}.json",
            content_hash=f"hash-{content}",
            stats={"round": round_number},
        )
        assert result.created
        committed.append((result.version.number, result.version.content_hash))
    return committed


def process_race_worker(
    spec: StoreSpec,
    project_json: str,
    *,
    worker: str,
    rounds: int,
    log: str,
    barrier: Any,
    results: Any,
) -> None:
    """A spawned process's share of the race; reports (worker, commits) or (worker, error)."""
    store = open_spec(spec)
    catalog = Catalog(store, lease_seconds=120, wait=RACE_WAIT)
    project = ProjectRef.model_validate_json(project_json)
    try:
        barrier.wait(timeout=120)
        results.put((worker, race_worker(catalog, project, worker, rounds, log)))
    except BaseException as exc:
        results.put((worker, f"{type(exc).__name__}: {exc}"))
        raise
    finally:
        store.close()


def hold_until_killed(spec: StoreSpec, project_json: str, lease_seconds: float, out: str) -> None:
    """Reserve, publish the reservation to ``out``, then wait to be killed without committing."""
    store = open_spec(spec)
    catalog = Catalog(store, lease_seconds=lease_seconds)
    reserved = catalog.reserve(ProjectRef.model_validate_json(project_json), holder="doomed")
    assert isinstance(reserved, Reservation)
    temp = Path(f"{out}.tmp")
    temp.write_text(reserved.model_dump_json())
    temp.replace(out)  # the parent sees the whole reservation or nothing
    threading.Event().wait()  # until SIGKILL
