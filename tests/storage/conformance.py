"""The object store conformance suite: what every :class:`ObjectStore` backend must do.

Abstract test classes in the style of fsspec's ``tests/abstract``: their only parameter is a
``store`` fixture (an empty store), which each backend's test module provides by subclassing
:class:`ObjectStoreConformance`. ``stream_size`` (bytes for the streaming tests) may be
overridden, e.g. to exceed the S3 part size so multipart uploads are exercised.
"""

from __future__ import annotations

import hashlib
import io
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import pytest

from labelvault.errors import (
    AlreadyExists,
    InvalidKey,
    ObjectNotFound,
    PreconditionFailed,
    StorageError,
)
from labelvault.storage.base import ObjectStore, StoredObject
from labelvault.storage.keys import join_key, safe_segment, unsafe_segment, validate_key

MiB = 1024 * 1024

BAD_KEYS = [
    "",
    "/absolute",
    "/",
    "..",
    ".",
    "a/../b",
    "../escape",
    "a/./b",
    "a//b",
    "a/",
    "a\x00b",
    "a\nb",
    "a\rb",
    "tab\tkey",
    "back\\slash",
    "x" * 1025,
]
BAD_PREFIXES = ["/absolute", "../escape", "a//", "a/../", "nul\x00", "new\nline"]
UNICODE_KEYS = [
    "данные/проект.json",
    "日本語/ファイル名.parquet",
    "emoji/😀🎉.bin",
    "spaces in/a name.txt",
    "percent%20and+plus=eq&amp/x",
    "accents/café-naïve",
    'quotes/it\'s "quoted"',
    "brackets/[x](y){z}",
]
FOREIGN_NAMES = [
    "https://app.supervisely.com:443/",
    "..",
    ".",
    "a/b\\c",
    "100% done?",
    "日本 project #1",
    "tab\tnew\nline\x00nul",
    "~user/.hidden",
]


def payload(label: str, size: int) -> bytes:
    """Deterministic, non-repeating bytes: torn or reordered writes cannot go unnoticed."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{label}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


def keys_of(store: ObjectStore, prefix: str = "", page_size: int = 1000) -> list[str]:
    return sorted(info.key for info in store.list(prefix, page_size=page_size))


def write_stream(
    store: ObjectStore,
    key: str,
    data: bytes,
    *,
    if_absent: bool = False,
    inside: Callable[[], None] | None = None,
    then_raise: BaseException | None = None,
) -> None:
    """Stream ``data`` into ``key``; run ``inside`` before the block ends, then maybe raise."""
    with store.open_write(key, if_absent=if_absent) as sink:
        sink.write(data)
        if inside is not None:
            inside()
        if then_raise is not None:
            raise then_raise


def race(workers: int, job: Callable[[int], Any]) -> list[Any]:
    """Run ``job(i)`` in ``workers`` threads released together by a barrier."""
    barrier = threading.Barrier(workers)

    def run(index: int) -> Any:
        barrier.wait(timeout=60)
        return job(index)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(run, range(workers)))


class ConformanceBase:
    """Fixtures every suite shares; backends override ``store`` (and maybe ``stream_size``)."""

    #: Rounds of the create-only race; a slow backend may lower it in a secondary run.
    race_rounds = 6

    @pytest.fixture
    def store(self) -> Iterator[ObjectStore]:
        raise NotImplementedError("a backend's test class provides the store fixture")

    @pytest.fixture
    def stream_size(self) -> int:
        return 3 * MiB + 12345


class BasicSuite(ConformanceBase):
    """put / get / head / exists."""

    def test_put_then_get_and_head(self, store: ObjectStore) -> None:
        data = payload("basic", 1000)
        etag = store.put("a/b/c.bin", data)
        assert isinstance(etag, str)
        assert etag
        got = store.get("a/b/c.bin")
        assert got.data == data
        assert got.etag == etag
        info = store.head("a/b/c.bin")
        assert info.key == "a/b/c.bin"
        assert info.size == len(data)
        assert info.etag == etag
        assert info.modified is None or (
            isinstance(info.modified, datetime) and info.modified.tzinfo is not None
        )
        assert store.exists("a/b/c.bin")

    def test_missing_object(self, store: ObjectStore) -> None:
        with pytest.raises(ObjectNotFound) as caught:
            store.get("nope/missing")
        assert caught.value.key == "nope/missing"
        assert caught.value.store == store.name
        with pytest.raises(ObjectNotFound):
            store.head("nope/missing")
        with pytest.raises(ObjectNotFound), store.open_read("nope/missing"):
            pass
        assert not store.exists("nope/missing")
        assert not store.exists("nope")

    def test_overwrite_replaces_content_and_etag(self, store: ObjectStore) -> None:
        first = store.put("k", b"first version")
        second = store.put("k", b"second, longer version")
        assert first != second
        got = store.get("k")
        assert got.data == b"second, longer version"
        assert got.etag == second
        assert store.head("k").size == len(b"second, longer version")

    def test_empty_and_binary_objects(self, store: ObjectStore) -> None:
        store.put("empty", b"")
        assert store.get("empty").data == b""
        assert store.head("empty").size == 0
        every_byte = bytes(range(256)) * 3
        store.put("binary", every_byte)
        assert store.get("binary").data == every_byte

    def test_etag_is_the_same_everywhere(self, store: ObjectStore) -> None:
        etag = store.put("x/y", b"payload")
        [listed] = list(store.list("x/"))
        assert listed.etag == etag == store.head("x/y").etag == store.get("x/y").etag
        assert listed.size == 7

    def test_repr_and_name(self, store: ObjectStore) -> None:
        assert store.name
        assert store.name in repr(store)


class ListingSuite(ConformanceBase):
    """list: completeness across pages, prefixes, laziness."""

    def test_pagination_returns_every_object_once(self, store: ObjectStore) -> None:
        expected = [f"many/{i:03d}" for i in range(23)] + [f"many/sub/{i}" for i in range(4)]
        for key in expected:
            store.put(key, key.encode())
        listed = [info.key for info in store.list("many/", page_size=5)]
        assert len(listed) == len(expected), "a key was repeated or lost across pages"
        assert sorted(listed) == sorted(expected)
        listed_one = [info.key for info in store.list(page_size=1)]
        assert sorted(listed_one) == sorted(expected)

    def test_sizes_and_etags_in_listing(self, store: ObjectStore) -> None:
        etags = {f"s/{i}": store.put(f"s/{i}", b"x" * i) for i in range(1, 6)}
        for info in store.list("s/", page_size=2):
            assert info.etag == etags[info.key]
            assert info.size == int(info.key.rsplit("/", 1)[1])

    def test_prefixes(self, store: ObjectStore) -> None:
        for key in ["dir/a", "dir/b/c", "dir2/a", "dirx", "other/dir/a", "d"]:
            store.put(key, b"1")
        assert keys_of(store, "dir/") == ["dir/a", "dir/b/c"]
        assert keys_of(store, "dir") == ["dir/a", "dir/b/c", "dir2/a", "dirx"]
        assert keys_of(store, "dir/b") == ["dir/b/c"]
        assert keys_of(store, "dir/b/c") == ["dir/b/c"]
        assert keys_of(store, "d") == ["d", "dir/a", "dir/b/c", "dir2/a", "dirx"]
        assert keys_of(store, "missing/") == []
        assert keys_of(store, "missing") == []
        assert keys_of(store) == sorted(["dir/a", "dir/b/c", "dir2/a", "dirx", "other/dir/a", "d"])

    def test_empty_store_lists_nothing(self, store: ObjectStore) -> None:
        assert keys_of(store) == []
        assert keys_of(store, "a/", page_size=1) == []

    def test_listing_is_lazy(self, store: ObjectStore) -> None:
        for i in range(6):
            store.put(f"lazy/{i}", b"1")
        iterator = iter(store.list("lazy/", page_size=2))
        first = next(iterator)
        assert first.key.startswith("lazy/")
        rest = list(iterator)
        assert len(rest) == 5

    def test_deleted_objects_leave_the_listing(self, store: ObjectStore) -> None:
        for i in range(4):
            store.put(f"gone/{i}/leaf", b"1")
        for i in range(3):
            store.delete(f"gone/{i}/leaf")
        assert keys_of(store, "gone/") == ["gone/3/leaf"]
        assert keys_of(store) == ["gone/3/leaf"]


class ConditionalSuite(ConformanceBase):
    """put_if_absent, put_if_match, delete(if_match), and races between writers."""

    def test_put_if_absent(self, store: ObjectStore) -> None:
        etag = store.put_if_absent("once", b"first")
        assert store.get("once").etag == etag
        with pytest.raises(AlreadyExists) as caught:
            store.put_if_absent("once", b"second")
        assert caught.value.key == "once"
        assert store.get("once").data == b"first"
        assert store.head("once").etag == etag

    def test_put_if_absent_after_delete(self, store: ObjectStore) -> None:
        store.put_if_absent("again", b"1")
        store.delete("again")
        store.put_if_absent("again", b"2")
        assert store.get("again").data == b"2"

    def test_put_if_absent_race_has_exactly_one_winner(self, store: ObjectStore) -> None:
        workers = 8
        for round_number in range(self.race_rounds):
            key = f"race/{round_number}"

            def attempt(index: int, key: str = key) -> tuple[int, str | None]:
                try:
                    return index, store.put_if_absent(key, f"writer {index}".encode())
                except AlreadyExists:
                    return index, None

            results = race(workers, attempt)
            winners = [(index, etag) for index, etag in results if etag is not None]
            assert len(winners) == 1, f"round {round_number}: winners {winners}"
            [(winner, etag)] = winners
            stored = store.get(key)
            assert stored.data == f"writer {winner}".encode()
            assert stored.etag == etag

    def test_put_if_match(self, store: ObjectStore) -> None:
        first = store.put("cas", b"v1")
        second = store.put_if_match("cas", b"v2", first)
        assert second != first
        assert store.get("cas") == StoredObject(data=b"v2", etag=second)
        with pytest.raises(PreconditionFailed) as caught:
            store.put_if_match("cas", b"v3", first)
        assert caught.value.key == "cas"
        assert store.get("cas").data == b"v2"
        third = store.put_if_match("cas", b"v3", store.head("cas").etag)
        assert store.get("cas").etag == third

    def test_put_if_match_with_etag_from_listing(self, store: ObjectStore) -> None:
        store.put("p/cas", b"v1")
        [info] = list(store.list("p/"))
        store.put_if_match("p/cas", b"v2", info.etag)
        assert store.get("p/cas").data == b"v2"

    def test_put_if_match_on_missing_key(self, store: ObjectStore) -> None:
        etag = store.put("was-here", b"v1")
        store.delete("was-here")
        with pytest.raises(PreconditionFailed):
            store.put_if_match("was-here", b"v2", etag)
        with pytest.raises(PreconditionFailed):
            store.put_if_match("never-here", b"v2", etag)
        assert not store.exists("was-here")
        assert not store.exists("never-here")

    def test_put_if_match_with_garbage_etag(self, store: ObjectStore) -> None:
        store.put("g", b"v1")
        for bogus in ["", "not-an-etag", '"quoted"', "*"]:
            with pytest.raises(PreconditionFailed):
                store.put_if_match("g", b"v2", bogus)
        assert store.get("g").data == b"v1"

    def test_cas_counter_race_loses_no_update(self, store: ObjectStore) -> None:
        workers, increments = 8, 10
        store.put("counter", b"0")

        def increment(_: int) -> int:
            done = 0
            while done < increments:
                current = store.get("counter")
                value = int(current.data) + 1
                try:
                    store.put_if_match("counter", str(value).encode(), current.etag)
                except PreconditionFailed:
                    continue
                done += 1
            return done

        assert sum(race(workers, increment)) == workers * increments
        assert int(store.get("counter").data) == workers * increments

    def test_delete(self, store: ObjectStore) -> None:
        store.put("del/me", b"1")
        store.delete("del/me")
        assert not store.exists("del/me")
        with pytest.raises(ObjectNotFound):
            store.get("del/me")
        store.delete("del/me")  # missing is not an error
        store.delete("never/existed")

    def test_delete_if_match(self, store: ObjectStore) -> None:
        old = store.put("dm", b"1")
        new = store.put("dm", b"2")
        with pytest.raises(PreconditionFailed):
            store.delete("dm", if_match=old)
        assert store.get("dm").data == b"2"
        store.delete("dm", if_match=new)
        assert not store.exists("dm")
        with pytest.raises(PreconditionFailed):
            store.delete("dm", if_match=new)

    def test_delete_if_match_race_has_one_winner(self, store: ObjectStore) -> None:
        etag = store.put("lease", b"held")

        def attempt(_: int) -> bool:
            try:
                store.delete("lease", if_match=etag)
            except PreconditionFailed:
                return False
            return True

        results = race(6, attempt)
        assert not store.exists("lease")
        # Deleting a deleted object may count as done on some backends; never fewer than one.
        assert sum(results) >= 1

    def test_cas_and_delete_race(self, store: ObjectStore) -> None:
        """A compare-and-swap must not resurrect an object that a delete removed first."""
        rounds = 10
        for round_number in range(rounds):
            key = f"cd/{round_number}"
            etag = store.put(key, b"v1")

            def act(index: int, key: str = key, etag: str = etag) -> str:
                try:
                    if index == 0:
                        store.delete(key, if_match=etag)
                        return "deleted"
                    store.put_if_match(key, b"v2", etag)
                except PreconditionFailed:
                    return "failed"
                return "swapped"

            outcome = race(2, act)
            if outcome == ["deleted", "failed"]:
                assert not store.exists(key)
            else:
                assert outcome == ["failed", "swapped"], outcome
                assert store.get(key).data == b"v2"


class StreamingSuite(ConformanceBase):
    """open_write / open_read of large objects; nothing partial is ever visible."""

    def test_stream_round_trip(self, store: ObjectStore, stream_size: int) -> None:
        data = payload("stream", stream_size)
        with store.open_write("big/object.bin") as sink:
            view = memoryview(data)
            position, step = 0, 7
            while position < len(view):
                sink.write(view[position : position + step])
                position += step
                step = min(step * 3, 1 * MiB + 13)
        assert store.head("big/object.bin").size == len(data)
        digest = hashlib.sha256()
        with store.open_read("big/object.bin") as source:
            while chunk := source.read(256 * 1024 + 1):
                digest.update(chunk)
        assert digest.hexdigest() == hashlib.sha256(data).hexdigest()
        assert store.get("big/object.bin").data == data

    def test_position_and_closing_inside_the_block(self, store: ObjectStore) -> None:
        with store.open_write("closed") as sink:
            assert sink.writable()
            sink.write(b"12345")
            sink.write(b"678")
            assert sink.tell() == 8
            sink.close()
        assert store.get("closed").data == b"12345678"
        with (
            store.open_write("text.json") as sink,
            io.TextIOWrapper(sink, encoding="utf-8") as text,
        ):
            text.write('{"name": "données"}')
        assert store.get("text.json").data == '{"name": "données"}'.encode()

    def test_small_stream(self, store: ObjectStore) -> None:
        with store.open_write("small") as sink:
            sink.write(b"a few bytes")
        assert store.get("small").data == b"a few bytes"
        with store.open_write("nothing") as sink:
            pass
        assert store.get("nothing").data == b""

    def test_read_all_at_once(self, store: ObjectStore) -> None:
        store.put("whole", payload("whole", 100_000))
        with store.open_read("whole") as source:
            assert source.read() == payload("whole", 100_000)

    def test_not_visible_until_exit(self, store: ObjectStore, stream_size: int) -> None:
        data = payload("pending", stream_size)
        with store.open_write("pending/obj") as sink:
            sink.write(data)
            assert not store.exists("pending/obj")
            assert keys_of(store) == []
        assert keys_of(store) == ["pending/obj"]

    def test_exception_aborts_the_write(self, store: ObjectStore, stream_size: int) -> None:
        data = payload("aborted", stream_size)

        class Boom(Exception):
            pass

        with pytest.raises(Boom):
            write_stream(store, "aborted/obj", data, then_raise=Boom())
        assert not store.exists("aborted/obj")
        assert keys_of(store) == []

    def test_exception_keeps_the_old_object(self, store: ObjectStore, stream_size: int) -> None:
        etag = store.put("keep", b"old")

        with pytest.raises(RuntimeError):
            write_stream(store, "keep", payload("new", stream_size), then_raise=RuntimeError())
        assert store.get("keep").data == b"old"
        assert store.get("keep").etag == etag

    def test_stream_overwrites(self, store: ObjectStore) -> None:
        store.put("over", b"old")
        with store.open_write("over") as sink:
            sink.write(b"new")
        assert store.get("over").data == b"new"

    def test_stream_if_absent(self, store: ObjectStore, stream_size: int) -> None:
        with store.open_write("fresh", if_absent=True) as sink:
            sink.write(b"first")
        assert store.get("fresh").data == b"first"
        with pytest.raises(AlreadyExists):
            write_stream(store, "fresh", payload("second", stream_size), if_absent=True)
        assert store.get("fresh").data == b"first"
        assert keys_of(store) == ["fresh"]

    def test_stream_if_absent_race(self, store: ObjectStore) -> None:
        def attempt(index: int) -> bool:
            try:
                with store.open_write("streamrace", if_absent=True) as sink:
                    sink.write(f"writer {index}".encode() * 1000)
            except AlreadyExists:
                return False
            return True

        results = race(4, attempt)
        assert sum(results) == 1
        winner = results.index(True)
        assert store.get("streamrace").data == f"writer {winner}".encode() * 1000


def _calls(store: ObjectStore, key: str) -> list[tuple[str, Callable[[], Any]]]:
    def enter_read() -> None:
        with store.open_read(key):
            pass

    def enter_write() -> None:
        with store.open_write(key) as sink:
            sink.write(b"x")

    def enter_write_if_absent() -> None:
        with store.open_write(key, if_absent=True) as sink:
            sink.write(b"x")

    return [
        ("put", lambda: store.put(key, b"x")),
        ("put_if_absent", lambda: store.put_if_absent(key, b"x")),
        ("put_if_match", lambda: store.put_if_match(key, b"x", "etag")),
        ("get", lambda: store.get(key)),
        ("head", lambda: store.head(key)),
        ("exists", lambda: store.exists(key)),
        ("open_read", enter_read),
        ("open_write", enter_write),
        ("open_write_if_absent", enter_write_if_absent),
        ("delete", lambda: store.delete(key)),
        ("delete_if_match", lambda: store.delete(key, if_match="etag")),
    ]


class KeySuite(ConformanceBase):
    """Key validation on every method, and keys beyond ASCII."""

    @pytest.mark.parametrize("key", BAD_KEYS, ids=repr)
    def test_every_method_rejects_bad_keys(self, store: ObjectStore, key: str) -> None:
        for method, call in _calls(store, key):
            with pytest.raises(InvalidKey) as caught:
                call()
            assert caught.value.key == key, method
        assert keys_of(store) == [], "a rejected key left something behind"

    @pytest.mark.parametrize("prefix", BAD_PREFIXES, ids=repr)
    def test_list_rejects_bad_prefixes(self, store: ObjectStore, prefix: str) -> None:
        with pytest.raises(InvalidKey):
            list(store.list(prefix))

    def test_invalid_key_is_a_storage_error(self, store: ObjectStore) -> None:
        with pytest.raises(StorageError):
            store.get("../etc/passwd")

    def test_unicode_keys(self, store: ObjectStore) -> None:
        for key in UNICODE_KEYS:
            assert validate_key(key) == key
            etag = store.put(key, key.encode())
            assert store.get(key).data == key.encode()
            assert store.head(key).etag == etag
        assert keys_of(store, page_size=3) == sorted(UNICODE_KEYS)
        assert keys_of(store, "данные/") == ["данные/проект.json"]
        etag = store.head(UNICODE_KEYS[0]).etag
        store.put_if_match(UNICODE_KEYS[0], b"cas", etag)
        for key in UNICODE_KEYS:
            store.delete(key)
        assert keys_of(store) == []

    def test_long_key(self, store: ObjectStore) -> None:
        key = "/".join(["s" * 200] * 4 + ["leaf"])  # 800-odd bytes, every segment < 255
        store.put(key, b"deep")
        assert store.get(key).data == b"deep"
        assert keys_of(store) == [key]

    def test_hidden_looking_segments_are_ordinary_keys(self, store: ObjectStore) -> None:
        for key in [".hidden", "dir/.dotfile", "...", "a/.../b", "-dash", "~tilde"]:
            store.put(key, b"1")
            assert store.get(key).data == b"1"
        assert len(keys_of(store)) == 6

    @pytest.mark.parametrize("name", FOREIGN_NAMES, ids=repr)
    def test_safe_segment_round_trip(self, store: ObjectStore, name: str) -> None:
        segment = safe_segment(name)
        assert unsafe_segment(segment) == name
        key = join_key("projects", segment, "manifest.json")
        assert validate_key(key) == key
        store.put(key, name.encode())
        [info] = list(store.list("projects/"))
        listed_segment = info.key.split("/")[1]
        assert unsafe_segment(listed_segment) == name
        assert store.get(info.key).data == name.encode()


class ObjectStoreConformance(BasicSuite, ListingSuite, ConditionalSuite, StreamingSuite, KeySuite):
    """Every suite at once: subclass it as ``TestXxxStore`` and provide ``store``."""
