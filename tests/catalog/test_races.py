"""Many writers on one project: threads, spawned processes, and a holder that gets killed.

What must hold: one holder at a time (the shared holder log never interleaves), version
numbers unique and gapless (1..N), no committed version lost, and a killed holder's lease
taken over once it expires, after which the killed holder's token is worthless.
"""

from __future__ import annotations

import json
import multiprocessing
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from labelvault.catalog import Catalog, Reservation, lease_key
from labelvault.errors import LeaseLost
from labelvault.models import ProjectRef
from labelvault.storage.base import ObjectStore
from tests.catalog.backends import StoreSpec
from tests.catalog.helpers import FakeClock, commit, fake_catalog, new_project, reserve
from tests.catalog.workers import RACE_WAIT, hold_until_killed, process_race_worker, race_worker

pytestmark = pytest.mark.slow

JOIN_SECONDS = 240.0


def assert_one_holder_at_a_time(log: Path) -> list[str]:
    """Replay the holder log; return the tokens in the order they held the lease."""
    holder: str | None = None
    order: list[str] = []
    for number, line in enumerate(log.read_text().splitlines(), 1):
        event, worker, token = line.split()
        if event == "start":
            assert holder is None, f"line {number}: {worker} started while {holder} held the lease"
            holder = token
            order.append(token)
        else:
            assert event == "end"
            assert holder == token, f"line {number}: {worker} ended a hold it did not start"
            holder = None
    assert holder is None, "the log ends inside a hold"
    return order


def assert_history(
    catalog: Catalog,
    project: ProjectRef,
    commits: dict[str, list[tuple[int, str]]],
    order: list[str],
) -> None:
    """Gapless, unique numbers; every worker's commits present under the numbers it was told."""
    versions = catalog.list(project)
    total = sum(len(done) for done in commits.values())
    assert [v.number for v in versions] == list(range(1, total + 1))
    by_number = {v.number: v.content_hash for v in versions}
    for worker, done in commits.items():
        for number, content_hash in done:
            assert by_number[number] == content_hash, f"{worker}'s version {number} was lost"
    assert len({v.commit_token for v in versions}) == total
    assert [v.commit_token for v in versions] == order, "numbers follow the order of holding"


def test_the_holder_log_check_catches_overlapping_holds(tmp_path: Path) -> None:
    log = tmp_path / "holders.log"
    log.write_text("start a t1\nend a t1\nstart b t2\nstart c t3\nend b t2\nend c t3\n")
    with pytest.raises(AssertionError, match="c started while t2 held the lease"):
        assert_one_holder_at_a_time(log)
    log.write_text("start a t1\nend a t1\nstart b t2\nend b t2\n")
    assert assert_one_holder_at_a_time(log) == ["t1", "t2"]


class TestRaces:
    def test_threads_race_reserve_then_commit(self, store: ObjectStore, tmp_path: Path) -> None:
        workers = 8
        rounds = 3
        project = new_project()
        log = tmp_path / "holders.log"
        barrier = threading.Barrier(workers)
        commits: dict[str, list[tuple[int, str]]] = {}
        errors: dict[str, BaseException] = {}

        def run(worker: str) -> None:
            catalog = Catalog(store, lease_seconds=120, wait=RACE_WAIT)
            try:
                barrier.wait(timeout=60)
                commits[worker] = race_worker(catalog, project, worker, rounds, str(log))
            except BaseException as exc:
                errors[worker] = exc

        threads = [threading.Thread(target=run, args=(f"thread-{i}",)) for i in range(workers)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + JOIN_SECONDS
        for thread in threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        assert not any(thread.is_alive() for thread in threads), "a worker is stuck"
        assert not errors, errors
        order = assert_one_holder_at_a_time(log)
        assert len(order) == workers * rounds
        assert_history(Catalog(store), project, commits, order)
        assert not store.exists(lease_key(project))

    def test_processes_race_reserve_then_commit(
        self, shared_store: tuple[ObjectStore, StoreSpec], tmp_path: Path
    ) -> None:
        store, spec = shared_store
        workers, rounds = 4, 3
        project = new_project()
        log = tmp_path / "holders.log"
        context = multiprocessing.get_context("spawn")
        barrier = context.Barrier(workers)
        results: Any = context.Queue()
        processes = [
            context.Process(
                target=process_race_worker,
                args=(spec, project.model_dump_json()),
                kwargs={
                    "worker": f"proc-{i}",
                    "rounds": rounds,
                    "log": str(log),
                    "barrier": barrier,
                    "results": results,
                },
            )
            for i in range(workers)
        ]
        try:
            for process in processes:
                process.start()
            deadline = time.monotonic() + JOIN_SECONDS
            reported = dict(
                results.get(timeout=max(1.0, deadline - time.monotonic())) for _ in processes
            )
            for process in processes:
                process.join(timeout=max(1.0, deadline - time.monotonic()))
        finally:
            for process in processes:
                if process.is_alive():
                    process.kill()
                    process.join(timeout=10)
        failures = {w: r for w, r in reported.items() if isinstance(r, str)}
        assert not failures, failures
        assert [process.exitcode for process in processes] == [0] * workers
        order = assert_one_holder_at_a_time(log)
        assert len(order) == workers * rounds
        assert_history(Catalog(store), project, reported, order)


class TestKilledHolder:
    def test_a_killed_holders_lease_is_taken_over_at_once(
        self, shared_store: tuple[ObjectStore, StoreSpec], tmp_path: Path
    ) -> None:
        store, spec = shared_store
        project = new_project()
        out = tmp_path / "reservation.json"
        context = multiprocessing.get_context("spawn")
        holder = context.Process(
            target=hold_until_killed, args=(spec, project.model_dump_json(), 2.0, str(out))
        )
        holder.start()
        try:
            deadline = time.monotonic() + 120
            while not out.exists():
                assert holder.is_alive(), f"the holder exited with {holder.exitcode}"
                assert time.monotonic() < deadline, "the holder never reserved"
                time.sleep(0.05)
            doomed = Reservation.model_validate_json(out.read_text())
            holder.kill()
            holder.join(timeout=30)
            assert holder.exitcode == -signal.SIGKILL
        finally:
            if holder.is_alive():
                holder.kill()
                holder.join(timeout=10)
        assert (doomed.expires_at - doomed.acquired_at).total_seconds() == pytest.approx(2.0)

        # The holder ran on this host and its process is gone: no need to wait for expiry.
        clock = FakeClock(start=doomed.acquired_at)
        waiter = fake_catalog(store, clock, lease_seconds=60, max_wait=30)
        taken = reserve(waiter, project, holder="waiter")
        assert clock.sleeps == [], "a lease of a dead process on this host is taken over at once"
        assert taken.version_number == 1
        assert taken.commit_token != doomed.commit_token

        waiter.cancel(doomed)  # not the holder any more: leaves the waiter's lease alone
        assert json.loads(store.get(lease_key(project)).data)["holder"] == "waiter"
        with pytest.raises(LeaseLost):
            waiter.renew(doomed)
        with pytest.raises(LeaseLost):
            commit(waiter, doomed, "from-the-dead")
        assert commit(waiter, taken, "alive").version.number == 1
        with pytest.raises(LeaseLost):
            commit(waiter, doomed, "from-the-dead")
        assert [v.content_hash for v in waiter.list(project)] == ["hash-alive"]
