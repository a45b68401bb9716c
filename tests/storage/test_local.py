"""The conformance suite on a local folder, and what only a filesystem can get wrong."""

from __future__ import annotations

import errno
import hashlib
import multiprocessing
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from labelvault.errors import (
    AlreadyExists,
    ConfigurationError,
    InvalidKey,
    ObjectNotFound,
    PreconditionFailed,
    StorageAccessDenied,
    StorageError,
    StorageUnavailable,
)
from labelvault.storage.local import INTERNAL_DIR, LocalStore
from tests.storage.conformance import (
    MiB,
    ObjectStoreConformance,
    _calls,
    keys_of,
    payload,
    write_stream,
)


class TestLocalStore(ObjectStoreConformance):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[LocalStore]:
        store = LocalStore(tmp_path / "store")
        yield store
        store.close()


# --- helpers that run in other processes (spawned: they import this module) ---------------


def _create_race_worker(root: str, worker: int, keys: int, barrier: Any, results: Any) -> None:
    store = LocalStore(root)
    barrier.wait(timeout=120)
    won = []
    for index in range(keys):
        try:
            store.put_if_absent(f"race/{index}", f"process {worker}".encode())
        except AlreadyExists:
            continue
        won.append(index)
    results.put((worker, won))


def _counter_worker(root: str, increments: int, barrier: Any) -> None:
    store = LocalStore(root)
    barrier.wait(timeout=120)
    done = 0
    while done < increments:
        current = store.get("counter")
        try:
            store.put_if_match("counter", str(int(current.data) + 1).encode(), current.etag)
        except PreconditionFailed:
            continue
        done += 1


def _run_processes(target: Any, args: list[tuple[Any, ...]]) -> None:
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=target, args=arg) for arg in args]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=180)
    assert [process.exitcode for process in processes] == [0] * len(processes)


class TestLocalStoreAcrossProcesses:
    def test_put_if_absent_race_between_processes(self, tmp_path: Path) -> None:
        workers, keys = 4, 40
        context = multiprocessing.get_context("spawn")
        barrier = context.Barrier(workers)
        results = context.Queue()
        _run_processes(
            _create_race_worker,
            [(str(tmp_path), worker, keys, barrier, results) for worker in range(workers)],
        )
        wins = dict(results.get(timeout=10) for _ in range(workers))
        store = LocalStore(tmp_path)
        for index in range(keys):
            winners = [worker for worker, won in wins.items() if index in won]
            assert len(winners) == 1, f"key {index}: winners {winners}"
            assert store.get(f"race/{index}").data == f"process {winners[0]}".encode()

    def test_cas_counter_between_processes(self, tmp_path: Path) -> None:
        workers, increments = 4, 25
        LocalStore(tmp_path).put("counter", b"0")
        barrier = multiprocessing.get_context("spawn").Barrier(workers)
        _run_processes(
            _counter_worker, [(str(tmp_path), increments, barrier) for _ in range(workers)]
        )
        assert LocalStore(tmp_path).get("counter").data == str(workers * increments).encode()


class TestLocalStoreFiles:
    def test_readers_never_see_a_torn_file(self, tmp_path: Path) -> None:
        store = LocalStore(tmp_path)
        versions = [payload(f"v{i}", 2 * MiB + i * 4099) for i in range(3)]
        digests = {hashlib.sha256(data).hexdigest() for data in versions}
        store.put("hot", versions[0])
        written: dict[str, str] = {}
        seen: list[tuple[str, str]] = []
        streamed: list[str] = []
        done = threading.Event()
        reads = [0, 0]

        def writer() -> None:
            try:
                for round_number in range(150):
                    data = versions[round_number % len(versions)]
                    written[store.put("hot", data)] = hashlib.sha256(data).hexdigest()
            finally:
                done.set()

        def get_reader() -> None:
            while not done.is_set():
                got = store.get("hot")
                seen.append((got.etag, hashlib.sha256(got.data).hexdigest()))
                reads[0] += 1

        def stream_reader() -> None:
            while not done.is_set():
                with store.open_read("hot") as source:
                    streamed.append(hashlib.sha256(source.read()).hexdigest())
                reads[1] += 1

        threads = [threading.Thread(target=job) for job in (writer, get_reader, stream_reader)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert reads[0] > 5
        assert reads[1] > 5
        assert set(streamed) <= digests, "a streamed read saw a partial file"
        for etag, digest in seen:
            assert digest in digests, "get() returned a partial file"
            if etag in written:
                assert written[etag] == digest, "get() paired bytes with another write's etag"

    def test_every_write_gets_a_new_etag(self, tmp_path: Path) -> None:
        store = LocalStore(tmp_path)
        etags = [store.put("same", b"identical bytes") for _ in range(200)]
        assert len(set(etags)) == len(etags)
        with pytest.raises(PreconditionFailed):
            store.put_if_match("same", b"late", etags[-2])
        store.delete("same")
        again = store.put_if_absent("same", b"identical bytes")
        assert again not in etags
        with pytest.raises(PreconditionFailed):
            store.put_if_match("same", b"late", etags[-1])

    def test_bookkeeping_files_are_never_listed(self, tmp_path: Path) -> None:
        store = LocalStore(tmp_path)
        store.put("a/one", b"1")
        etag = store.put("a/two", b"2")
        with pytest.raises(PreconditionFailed):
            store.put_if_match("a/two", b"x", "stale")
        store.put_if_match("a/two", b"3", etag)
        with pytest.raises(AlreadyExists):
            store.put_if_absent("a/one", b"x")
        listed_meanwhile: list[list[str]] = []
        with pytest.raises(ValueError, match="boom"):
            write_stream(
                store,
                "a/three",
                b"partial",
                inside=lambda: listed_meanwhile.append(keys_of(store)),
                then_raise=ValueError("boom"),
            )
        assert listed_meanwhile == [["a/one", "a/two"]]
        store.delete("a/one", if_match=store.head("a/one").etag)
        (tmp_path / INTERNAL_DIR / "tmp" / "left-by-a-crash.tmp").write_bytes(b"junk")
        assert keys_of(store) == ["a/two"]
        assert keys_of(store, ".l") == []
        assert keys_of(store, ".labelvault/") == []
        assert list((tmp_path / INTERNAL_DIR / "locks").iterdir()), "locks live in the store"
        leftovers = {path.name for path in (tmp_path / INTERNAL_DIR / "tmp").iterdir()}
        assert leftovers == {"left-by-a-crash.tmp"}, "a temp file outlived its write"

    def test_internal_folder_is_not_a_key(self, tmp_path: Path) -> None:
        store = LocalStore(tmp_path)
        for key in [INTERNAL_DIR, f"{INTERNAL_DIR}/locks/000.lock", f"{INTERNAL_DIR}/x"]:
            for method, call in _calls(store, key):
                with pytest.raises(InvalidKey):
                    call()
                assert method
        store.put(f"sub/{INTERNAL_DIR}/x", b"fine below the top level")
        store.put(".labelvault-not-quite", b"fine too")
        assert keys_of(store) == [".labelvault-not-quite", f"sub/{INTERNAL_DIR}/x"]

    def test_a_key_cannot_also_be_a_folder(self, tmp_path: Path) -> None:
        store = LocalStore(tmp_path)
        store.put("a", b"file")
        store.put("b/c", b"below")
        calls: list[Callable[[], object]] = [
            lambda: store.put("a/b", b"x"),
            lambda: store.put_if_absent("a/b", b"x"),
            lambda: store.put("b", b"x"),
            lambda: store.put_if_absent("b", b"x"),
        ]
        for call in calls:
            with pytest.raises(InvalidKey, match="both a key and keys below it"):
                call()
        assert not store.exists("b")
        assert not store.exists("a/b")
        assert store.get("a").data == b"file"
        assert keys_of(store) == ["a", "b/c"]

    def test_delete_prunes_empty_folders(self, tmp_path: Path) -> None:
        store = LocalStore(tmp_path)
        store.put("x/y/z/leaf", b"1")
        store.put("x/other", b"1")
        store.delete("x/y/z/leaf")
        assert not (tmp_path / "x" / "y").exists()
        assert (tmp_path / "x" / "other").exists()
        store.delete("x/other")
        assert not (tmp_path / "x").exists()
        assert tmp_path.exists()
        store.put("x/y/z/leaf", b"again")
        assert store.get("x/y/z/leaf").data == b"again"

    def test_files_are_the_objects(self, tmp_path: Path) -> None:
        store = LocalStore(tmp_path / "new" / "root")
        store.put("dir/file.txt", b"plain file")
        assert (tmp_path / "new" / "root" / "dir" / "file.txt").read_bytes() == b"plain file"
        reopened = LocalStore(str(tmp_path / "new" / "root"))
        assert reopened.get("dir/file.txt").data == b"plain file"
        assert reopened.name == f"local:{tmp_path / 'new' / 'root'}"

    def test_nothing_is_created_before_the_first_write(self, tmp_path: Path) -> None:
        store = LocalStore(tmp_path / "missing")
        assert not store.exists("k")
        assert keys_of(store) == []
        with pytest.raises(ObjectNotFound):
            store.get("k")
        store.delete("k")
        assert not (tmp_path / "missing").exists()
        store.put("k", b"1")
        assert store.get("k").data == b"1"

    def test_root_must_be_a_folder(self, tmp_path: Path) -> None:
        (tmp_path / "file").write_bytes(b"")
        with pytest.raises(ConfigurationError, match="not a folder"):
            LocalStore(tmp_path / "file")

    def test_relative_root(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.chdir(tmp_path)
        store = LocalStore("relative-store")
        store.put("k", b"1")
        monkeypatch.chdir("/")
        assert store.get("k").data == b"1"
        assert store.root == tmp_path / "relative-store"

    def test_arrow_filesystem_scans_in_place(self, tmp_path: Path) -> None:
        store = LocalStore(tmp_path)
        table = pa.table({"id": [1, 2, 3], "name": ["a", "b", "c"]})
        with store.open_write("tables/items.parquet", if_absent=True) as sink:
            pq.write_table(table, sink)
        filesystem, root = store.arrow_filesystem()
        assert pq.read_table(f"{root}/tables/items.parquet", filesystem=filesystem) == table

    @pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
    def test_permission_denied(self, tmp_path: Path) -> None:
        store = LocalStore(tmp_path)
        store.put("locked/k", b"1")
        (tmp_path / "locked").chmod(0o500)
        try:
            with pytest.raises(StorageAccessDenied):
                store.put("locked/other", b"1")
        finally:
            (tmp_path / "locked").chmod(0o700)

    @pytest.mark.parametrize(
        ("error", "expected"),
        [
            (PermissionError(errno.EACCES, "Permission denied"), StorageAccessDenied),
            (OSError(errno.ENOSPC, "No space left on device"), StorageUnavailable),
            (OSError(errno.EIO, "Input/output error"), StorageUnavailable),
            (OSError(errno.ENAMETOOLONG, "File name too long"), InvalidKey),
            (OSError(errno.EROFS, "Read-only file system"), StorageError),
        ],
        ids=lambda value: type(value).__name__ if isinstance(value, type) else str(value),
    )
    def test_filesystem_errors_are_translated(
        self,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        error: OSError,
        expected: type[StorageError],
    ) -> None:
        store = LocalStore(tmp_path)

        def fail(*args: Any, **kwargs: Any) -> None:
            raise error

        monkeypatch.setattr(os, "replace", fail)
        monkeypatch.setattr(os, "link", fail)
        calls: list[Callable[[], object]] = [
            lambda: store.put("k", b"1"),
            lambda: store.put_if_absent("k", b"1"),
        ]
        for call in calls:
            with pytest.raises(expected) as caught:
                call()
            assert type(caught.value) is expected
            assert caught.value.key == "k"
            assert caught.value.__cause__ is error
        monkeypatch.undo()
        assert keys_of(store) == []
        assert not list((tmp_path / INTERNAL_DIR / "tmp").iterdir())
