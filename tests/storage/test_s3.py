"""The conformance suite on a real S3-compatible server, and S3's own failure modes.

Classes marked ``s3`` use the SeaweedFS server from :mod:`tests.servers.s3`; the offline
classes check configuration and error translation with botocore's stubber or request hooks.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import botocore.exceptions
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from botocore.stub import Stubber

from devstack.process import free_port
from labelvault.errors import (
    AlreadyExists,
    BucketNotFound,
    ConfigurationError,
    ObjectNotFound,
    PreconditionFailed,
    StorageAccessDenied,
    StorageError,
    StorageUnavailable,
    TransientError,
    is_transient,
)
from labelvault.storage.s3 import DEFAULT_PART_SIZE, MIN_PART_SIZE, S3Store
from tests.servers.s3 import S3Server, S3StoreFactory
from tests.storage.conformance import (
    MiB,
    ObjectStoreConformance,
    keys_of,
    payload,
    write_stream,
)

PART = MIN_PART_SIZE


@pytest.mark.s3
class TestS3Store(ObjectStoreConformance):
    @pytest.fixture
    def store(self, s3_store_factory: S3StoreFactory) -> S3Store:
        return s3_store_factory(part_size=PART)

    @pytest.fixture
    def stream_size(self) -> int:
        return 2 * PART + 1 * MiB + 777  # three parts, the last one short


@pytest.mark.s3
class TestS3StoreWithPrefix(ObjectStoreConformance):
    """The same contract when the store lives under a prefix of its bucket."""

    race_rounds = 2  # SeaweedFS makes losers of a conditional-put race wait ~1 s each

    @pytest.fixture
    def store(self, s3_store_factory: S3StoreFactory) -> S3Store:
        return s3_store_factory("team/labelvault", part_size=PART)

    @pytest.fixture
    def stream_size(self) -> int:
        return PART + 4321


@pytest.mark.s3
class TestS3Specifics:
    def test_missing_bucket(self, s3_server: S3Server) -> None:
        store = s3_server.store("lv-no-such-bucket")
        calls: list[tuple[str, Any]] = [
            ("head", lambda: store.head("k")),
            ("exists", lambda: store.exists("k")),
            ("get", lambda: store.get("k")),
            ("put", lambda: store.put("k", b"1")),
            ("put_if_absent", lambda: store.put_if_absent("k", b"1")),
            ("list", lambda: list(store.list())),
            ("check_bucket", store.check_bucket),
        ]
        for method, call in calls:
            with pytest.raises(BucketNotFound) as caught:
                call()
            assert "create the bucket" in str(caught.value), method
            assert not is_transient(caught.value)
        with pytest.raises(BucketNotFound):
            write_stream(store, "k", b"1")
        # labelvault never creates buckets, not even by writing.
        names = [b["Name"] for b in s3_server.client().list_buckets().get("Buckets", [])]
        assert "lv-no-such-bucket" not in names

    @pytest.mark.parametrize("wrong", ["secret", "access"])
    def test_wrong_credentials(
        self, s3_server: S3Server, s3_store_factory: S3StoreFactory, wrong: str
    ) -> None:
        bucket = s3_server.bucket
        bad_secret = "wrong-" + s3_server.secret_key[::-1]
        options = (
            {"secret_key": bad_secret}
            if wrong == "secret"
            else {"access_key": "LVWRONGKEY0000", "secret_key": bad_secret}
        )
        store = s3_server.store(bucket, **options)
        calls: list[Any] = [
            lambda: store.get("k"),
            lambda: store.head("k"),
            lambda: store.put("k", b"1"),
            lambda: store.put_if_absent("k", b"1"),
            lambda: list(store.list()),
            lambda: store.delete("k"),
        ]
        for call in calls:
            with pytest.raises(StorageAccessDenied) as caught:
                call()
            error = caught.value
            assert "LABELVAULT_STORE_S3_ACCESS_KEY" in str(error)
            for text in (str(error), repr(error), error.message, error.store, repr(store)):
                assert bad_secret not in text
                assert s3_server.secret_key not in text
        store.close()

    def test_unreachable_endpoint_fails_fast(self) -> None:
        port = free_port()  # nothing listens there
        store = S3Store(
            "bucket",
            endpoint_url=f"http://127.0.0.1:{port}",
            access_key="k",
            secret_key="s3cr3t-value",
            region="us-east-1",
        )
        for call in (lambda: store.get("k"), lambda: store.put("k", b"1"), store.check_bucket):
            started = time.monotonic()
            with pytest.raises(StorageUnavailable) as caught:
                call()
            elapsed = time.monotonic() - started
            assert elapsed < 10, f"took {elapsed:.1f} s to give up"
            assert isinstance(caught.value, TransientError)
            assert f"127.0.0.1:{port}" in str(caught.value)
            assert "s3cr3t-value" not in str(caught.value)
        store.close()

    def test_large_streams_use_multipart(
        self, s3_store_factory: S3StoreFactory, s3_server: S3Server
    ) -> None:
        store = s3_store_factory(part_size=PART)
        data = payload("multipart", 2 * PART + 10)
        with store.open_write("big") as sink:
            sink.write(data)
        assert store.head("big").etag.endswith("-3")
        assert store.get("big").data == data
        with store.open_write("small") as sink:
            sink.write(b"x" * 1000)
        assert "-" not in store.head("small").etag
        assert not _open_uploads(s3_server, store)

    def test_threshold_above_part_size(self, s3_store_factory: S3StoreFactory) -> None:
        store = s3_store_factory(part_size=PART, multipart_threshold=3 * PART)
        with store.open_write("below") as sink:
            sink.write(payload("below", 2 * PART + 1))
        assert "-" not in store.head("below").etag
        with store.open_write("above") as sink:
            sink.write(payload("above", 3 * PART + 1))
        assert store.head("above").etag.endswith("-4")

    def test_aborted_multipart_leaves_no_upload(
        self, s3_store_factory: S3StoreFactory, s3_server: S3Server
    ) -> None:
        store = s3_store_factory(part_size=PART)
        with pytest.raises(KeyboardInterrupt):
            write_stream(
                store, "aborted", payload("aborted", 2 * PART + 5), then_raise=KeyboardInterrupt()
            )
        assert not store.exists("aborted")
        assert not _open_uploads(s3_server, store)

    def test_multipart_if_absent_loses_to_existing(
        self, s3_store_factory: S3StoreFactory, s3_server: S3Server
    ) -> None:
        store = s3_store_factory(part_size=PART)
        store.put("taken", b"first")
        with pytest.raises(AlreadyExists):
            write_stream(store, "taken", payload("second", PART + 1), if_absent=True)
        assert store.get("taken").data == b"first"
        assert not _open_uploads(s3_server, store)

    def test_listing_pages_lazily(self, s3_store_factory: S3StoreFactory) -> None:
        store = s3_store_factory()
        for i in range(7):
            store.put(f"p/{i}", b"1")
        requests: list[dict[str, Any]] = []

        def count(params: dict[str, Any], **_: Any) -> None:
            requests.append(params)

        store._client.meta.events.register("provide-client-params.s3.ListObjectsV2", count)
        iterator = iter(store.list("p/", page_size=3))
        next(iterator)
        assert len(requests) == 1
        assert requests[0]["MaxKeys"] == 3
        assert len(list(iterator)) == 6
        assert len(requests) == 3

    def test_prefixes_isolate_stores(
        self, s3_server: S3Server, s3_store_factory: S3StoreFactory
    ) -> None:
        bucket = s3_store_factory(new_bucket=True).bucket
        one = s3_server.store(bucket, "one")
        two = s3_server.store(bucket, "/two/")
        one.put("k", b"1")
        two.put("k", b"2")
        assert one.get("k").data == b"1"
        assert two.get("k").data == b"2"
        assert keys_of(one) == ["k"]
        raw = s3_server.client().list_objects_v2(Bucket=bucket)
        assert sorted(item["Key"] for item in raw.get("Contents", [])) == ["one/k", "two/k"]
        assert one.name.startswith(f"s3://{bucket}/one")

    def test_foreign_objects_with_invalid_keys_are_skipped(
        self, s3_server: S3Server, s3_store_factory: S3StoreFactory
    ) -> None:
        store = s3_store_factory()
        client = s3_server.client()
        stored = []
        for foreign in ["folder-marker/", "tab\tkey", "new\nline"]:
            try:
                client.put_object(Bucket=store.bucket, Key=f"{store.prefix}/{foreign}", Body=b"")
            except botocore.exceptions.ClientError:
                continue  # the server refuses that name itself
            stored.append(foreign)
        assert "folder-marker/" in stored
        store.put("ok", b"1")
        assert keys_of(store) == ["ok"]
        raw = client.list_objects_v2(Bucket=store.bucket, Prefix=f"{store.prefix}/")
        assert len(raw.get("Contents", [])) > 1

    def test_addressing_styles_accepted(
        self, s3_server: S3Server, s3_store_factory: S3StoreFactory
    ) -> None:
        bucket = s3_store_factory(new_bucket=True).bucket
        for style in ("path", "auto"):
            store = s3_server.store(bucket, addressing_style=style)
            store.put(f"style-{style}", b"1")
            assert store.get(f"style-{style}").data == b"1"
        virtual = s3_server.store(bucket, addressing_style="virtual")
        assert virtual._client.meta.config.s3 == {"addressing_style": "virtual"}  # type: ignore[attr-defined]

    def test_arrow_filesystem_reads_what_the_store_wrote(
        self, s3_store_factory: S3StoreFactory
    ) -> None:
        store = s3_store_factory("arrow")
        table = pa.table({"id": list(range(1000)), "name": [f"n{i}" for i in range(1000)]})
        with store.open_write("tables/items.parquet") as sink:
            pq.write_table(table, sink)
        filesystem, root = store.arrow_filesystem()
        assert root == f"{store.bucket}/{store.prefix}"
        assert store.prefix.endswith("/arrow")
        assert pq.read_table(f"{root}/tables/items.parquet", filesystem=filesystem) == table
        pq.write_table(table.slice(0, 10), f"{root}/tables/head.parquet", filesystem=filesystem)
        assert store.head("tables/head.parquet").size > 0

    def test_missing_object_in_existing_bucket(self, s3_store_factory: S3StoreFactory) -> None:
        store = s3_store_factory()
        with pytest.raises(ObjectNotFound):
            store.head("absent")
        with pytest.raises(ObjectNotFound):
            store.get("absent")


def _open_uploads(server: S3Server, store: S3Store) -> list[str]:
    uploads = server.client().list_multipart_uploads(Bucket=store.bucket, Prefix=store.prefix)
    return [upload["Key"] for upload in uploads.get("Uploads", [])]


def _offline_store(**options: Any) -> S3Store:
    settings: dict[str, Any] = {
        "endpoint_url": "http://127.0.0.1:9",
        "region": "us-east-1",
        "access_key": "AKIDEXAMPLE",
        "secret_key": "offline-secret-value",
        "max_attempts": 1,
    }
    settings.update(options)
    return S3Store("bucket", "pre", **settings)


class _Captured(Exception):
    pass


class TestS3Configuration:
    """Offline: constructor checks, names, addressing styles as sent on the wire."""

    @pytest.mark.parametrize(
        ("style", "endpoint", "expected"),
        [
            ("path", "http://127.0.0.1:9", "http://127.0.0.1:9/bucket/pre/k"),
            ("virtual", "http://s3.example.test", "http://bucket.s3.example.test/pre/k"),
        ],
    )
    def test_addressing_style_on_the_wire(self, style: str, endpoint: str, expected: str) -> None:
        store = _offline_store(addressing_style=style, endpoint_url=endpoint)
        urls: list[str] = []

        def capture(request: Any, **_: Any) -> None:
            urls.append(request.url)
            raise _Captured

        store._client.meta.events.register("before-send.s3", capture)
        with pytest.raises(_Captured):
            store.put("k", b"1")
        assert urls == [expected]

    def test_name_has_bucket_prefix_and_host_but_no_secrets(self) -> None:
        store = _offline_store(endpoint_url="http://user:pw@minio.internal:9000")
        assert store.name == "s3://bucket/pre at minio.internal:9000"
        assert "offline-secret-value" not in repr(store)
        assert "pw" not in store.name
        assert store.endpoint == "http://minio.internal:9000"
        assert _offline_store(endpoint_url=None, region="eu-west-1").name == "s3://bucket/pre"

    @pytest.mark.parametrize(
        "options",
        [
            {"addressing_style": "sideways"},
            {"part_size": MIN_PART_SIZE - 1},
            {"multipart_threshold": 0},
            {"max_attempts": 0},
            {"access_key": None},
            {"endpoint_url": "not a url"},
            {"endpoint_url": "ftp://host:21"},
            {"endpoint_url": "http://user:offline-secret-value@host:notaport"},
        ],
        ids=repr,
    )
    def test_bad_configuration(self, options: dict[str, Any]) -> None:
        with pytest.raises(ConfigurationError) as caught:
            _offline_store(**options)
        assert "offline-secret-value" not in str(caught.value)

    @pytest.mark.parametrize("bucket", ["", "a/b"])
    def test_bad_bucket(self, bucket: str) -> None:
        with pytest.raises(ConfigurationError):
            S3Store(bucket)

    def test_defaults(self) -> None:
        store = _offline_store()
        assert store.part_size == DEFAULT_PART_SIZE
        assert store.multipart_threshold == DEFAULT_PART_SIZE
        assert store.region == "us-east-1"

    def test_arrow_filesystem_settings(self) -> None:
        filesystem, root = _offline_store(endpoint_url="http://127.0.0.1:9").arrow_filesystem()
        assert root == "bucket/pre"
        assert filesystem.type_name == "s3"
        assert filesystem.region == "us-east-1"


@pytest.fixture
def stubbed() -> Iterator[tuple[S3Store, Stubber]]:
    store = _offline_store()
    with Stubber(store._client) as stubber:
        yield store, stubber
        stubber.assert_no_pending_responses()


def _error(stubber: Stubber, method: str, code: str, status: int, message: str = "") -> None:
    stubber.add_client_error(
        method, service_error_code=code, http_status_code=status, service_message=message
    )


class TestS3ErrorTranslation:
    """Offline: how each S3 answer maps onto labelvault.errors."""

    @pytest.mark.parametrize(
        ("code", "status", "expected"),
        [
            ("NoSuchKey", 404, ObjectNotFound),
            ("NoSuchBucket", 404, BucketNotFound),
            ("AccessDenied", 403, StorageAccessDenied),
            ("InvalidAccessKeyId", 403, StorageAccessDenied),
            ("SignatureDoesNotMatch", 403, StorageAccessDenied),
            ("InternalError", 500, StorageUnavailable),
            ("ServiceUnavailable", 503, StorageUnavailable),
            ("SlowDown", 503, StorageUnavailable),
            ("InvalidArgument", 400, StorageError),
        ],
    )
    def test_get(
        self,
        stubbed: tuple[S3Store, Stubber],
        code: str,
        status: int,
        expected: type[StorageError],
    ) -> None:
        store, stubber = stubbed
        _error(stubber, "get_object", code, status, "the server said offline-secret-value")
        with pytest.raises(expected) as caught:
            store.get("k")
        assert type(caught.value) is expected
        assert isinstance(caught.value.__cause__, botocore.exceptions.ClientError)
        assert caught.value.key == "k"
        assert "offline-secret-value" not in str(caught.value)

    @pytest.mark.parametrize(
        ("code", "status"),
        [("PreconditionFailed", 412), ("ConditionalRequestConflict", 409), ("NoSuchKey", 404)],
    )
    def test_put_if_match_conflicts(
        self, stubbed: tuple[S3Store, Stubber], code: str, status: int
    ) -> None:
        store, stubber = stubbed
        _error(stubber, "put_object", code, status)
        with pytest.raises(PreconditionFailed):
            store.put_if_match("k", b"1", "abc")

    @pytest.mark.parametrize(
        ("code", "status"),
        [("PreconditionFailed", 412), ("ConditionalRequestConflict", 409), ("NoSuchKey", 404)],
    )
    def test_delete_if_match_conflicts(
        self, stubbed: tuple[S3Store, Stubber], code: str, status: int
    ) -> None:
        store, stubber = stubbed
        _error(stubber, "delete_object", code, status)
        with pytest.raises(PreconditionFailed):
            store.delete("k", if_match="abc")

    def test_if_match_sends_a_quoted_etag(self, stubbed: tuple[S3Store, Stubber]) -> None:
        store, stubber = stubbed
        stubber.add_response(
            "put_object",
            {"ETag": '"new"'},
            {"Bucket": "bucket", "Key": "pre/k", "Body": b"1", "IfMatch": '"old"'},
        )
        assert store.put_if_match("k", b"1", "old") == "new"

    def test_put_if_absent_retries_a_conflict(self) -> None:
        store = _offline_store(max_attempts=3)
        with Stubber(store._client) as stubber:
            _error(stubber, "put_object", "ConditionalRequestConflict", 409)
            _error(stubber, "put_object", "PreconditionFailed", 412)
            with pytest.raises(AlreadyExists):
                store.put_if_absent("k", b"1")
            _error(stubber, "put_object", "ConditionalRequestConflict", 409)
            stubber.add_response("put_object", {"ETag": '"e"'})
            assert store.put_if_absent("k", b"1") == "e"
            for _ in range(3):
                _error(stubber, "put_object", "ConditionalRequestConflict", 409)
            with pytest.raises(StorageUnavailable):
                store.put_if_absent("k", b"1")
            stubber.assert_no_pending_responses()

    def test_head_404_checks_the_bucket_once(self, stubbed: tuple[S3Store, Stubber]) -> None:
        store, stubber = stubbed
        _error(stubber, "head_object", "404", 404)
        _error(stubber, "head_bucket", "404", 404)
        with pytest.raises(BucketNotFound):
            store.head("k")
        _error(stubber, "head_object", "404", 404)
        stubber.add_response("head_bucket", {})
        with pytest.raises(ObjectNotFound):
            store.head("k")
        _error(stubber, "head_object", "404", 404)  # the bucket is known now: no second check
        assert not store.exists("k")

    def test_delete_missing_key_is_fine(self, stubbed: tuple[S3Store, Stubber]) -> None:
        store, stubber = stubbed
        _error(stubber, "delete_object", "NoSuchKey", 404)
        store.delete("k")

    def test_failed_part_upload_aborts(self, stubbed: tuple[S3Store, Stubber]) -> None:
        store, stubber = stubbed
        stubber.add_response("create_multipart_upload", {"UploadId": "u1"})
        _error(stubber, "upload_part", "InternalError", 500)
        stubber.add_response(
            "abort_multipart_upload", {}, {"Bucket": "bucket", "Key": "pre/big", "UploadId": "u1"}
        )
        with pytest.raises(StorageUnavailable):
            write_stream(store, "big", b"x" * (store.part_size + 1))
