"""An object store on S3 or any S3-compatible server (MinIO, SeaweedFS, Ceph …), via boto3.

Conditional writes use S3's own preconditions, so the catalog needs no lock server:
``put_if_absent`` sends ``If-None-Match: *``, ``put_if_match`` and ``delete(if_match=…)`` send
``If-Match: <etag>``. A 412, a 409 ``ConditionalRequestConflict`` (AWS under races) and a 404
for ``If-Match`` on a missing key all mean :class:`~labelvault.errors.PreconditionFailed`.

Every botocore error is translated here, at the boundary, into :mod:`labelvault.errors`;
messages say what to do next and never contain the secret key or session token. The bucket
must exist: labelvault never creates buckets.

Etags are the server's ETag without the surrounding quotes (a multipart object's etag ends in
``-<parts>``). Objects whose names are not valid keys (written by other tools) are skipped by
:meth:`S3Store.list`.
"""

from __future__ import annotations

import contextlib
import functools
import io
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any, Literal, NoReturn, TypeVar
from urllib.parse import urlsplit

import boto3
import botocore.exceptions
from botocore.config import Config

from labelvault.errors import (
    AlreadyExists,
    BucketNotFound,
    ConfigurationError,
    InvalidKey,
    ObjectNotFound,
    PreconditionFailed,
    StorageAccessDenied,
    StorageError,
    StorageUnavailable,
)
from labelvault.storage.base import ObjectInfo, ObjectStore, StoredObject
from labelvault.storage.keys import validate_key, validate_prefix
from labelvault.storage.s3_streams import BodySource, UploadSink
from labelvault.storage.s3_wire import (
    ACCESS_CODES,
    CREDENTIAL_HINT,
    DEFAULT_PART_SIZE,
    MIN_PART_SIZE,
    MISSING_KEY_CODES,
    PRECONDITION_CODES,
    UNAVAILABLE_CODES,
    MiB,
    error_code,
    quote_etag,
    unquote_etag,
)

if TYPE_CHECKING:
    import pyarrow.fs
    from mypy_boto3_s3.client import S3Client

__all__ = ["DEFAULT_PART_SIZE", "MIN_PART_SIZE", "AddressingStyle", "S3Store"]

AddressingStyle = Literal["auto", "path", "virtual"]
_T = TypeVar("_T")


class S3Store(ObjectStore):
    """Objects under ``s3://bucket/prefix``.

    ``endpoint_url`` selects an S3-compatible server; ``access_key``/``secret_key`` (and
    ``session_token``) override boto3's usual credential chain. Timeouts are in seconds;
    ``max_attempts`` bounds botocore's retries, so an unreachable endpoint fails in seconds
    with :class:`~labelvault.errors.StorageUnavailable`. Streams written with
    :meth:`open_write` that reach ``multipart_threshold`` bytes are uploaded in parts of
    ``part_size`` bytes (at least 5 MiB, S3's minimum for every part but the last).
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
        session_token: str | None = None,
        addressing_style: AddressingStyle = "auto",
        multipart_threshold: int | None = None,
        part_size: int = DEFAULT_PART_SIZE,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
        max_attempts: int = 3,
        max_pool_connections: int = 32,
    ) -> None:
        if not bucket or "/" in bucket:
            raise ConfigurationError(f"invalid S3 bucket name {bucket!r}")
        if addressing_style not in ("auto", "path", "virtual"):
            raise ConfigurationError(
                f"unknown S3 addressing style {addressing_style!r}; use 'auto', 'path' or 'virtual'"
            )
        if (access_key is None) != (secret_key is None):
            raise ConfigurationError(
                "S3 credentials need both an access key and a secret key: set both "
                "LABELVAULT_STORE_S3_ACCESS_KEY and LABELVAULT_STORE_S3_SECRET_KEY, or neither"
            )
        if part_size < MIN_PART_SIZE:
            raise ConfigurationError(
                f"part_size must be at least {MIN_PART_SIZE} bytes (5 MiB), S3's minimum part size"
            )
        if max_attempts < 1:
            raise ConfigurationError("max_attempts must be at least 1")
        prefix = prefix.strip("/")
        if prefix:
            validate_prefix(prefix, store=f"s3://{bucket}")
        self.bucket = bucket
        self.prefix = prefix
        self._root = f"{prefix}/" if prefix else ""
        self.endpoint_url = endpoint_url
        self.addressing_style: AddressingStyle = addressing_style
        self.part_size = part_size
        self.multipart_threshold = part_size if multipart_threshold is None else multipart_threshold
        if self.multipart_threshold < 1:
            raise ConfigurationError("multipart_threshold must be at least 1 byte")
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_attempts = max_attempts
        self._secrets = [value for value in (secret_key, session_token) if value]

        where = ""
        #: The endpoint for messages: scheme, host and port only (never user info).
        self.endpoint = "the AWS S3 endpoint"
        if endpoint_url:
            parts = urlsplit(endpoint_url)
            try:
                port = parts.port
            except ValueError:
                port = None
                parts = parts._replace(scheme="")
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ConfigurationError(
                    "invalid S3 endpoint URL; use the form http://host:port or https://host"
                )
            host = f"{parts.hostname}" + (f":{port}" if port else "")
            where = f" at {host}"
            self.endpoint = f"{parts.scheme}://{host}"
        self.name = f"s3://{bucket}" + (f"/{prefix}" if prefix else "") + where

        self._session = boto3.session.Session(
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            aws_session_token=session_token,
            region_name=region,
        )
        self.region = region or self._session.region_name or "us-east-1"
        config = Config(
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"max_attempts": max_attempts, "mode": "standard"},
            s3={"addressing_style": addressing_style},
            signature_version="s3v4",
            max_pool_connections=max_pool_connections,
        )
        try:
            self._client: S3Client = self._session.client(
                "s3", endpoint_url=endpoint_url, region_name=self.region, config=config
            )
        except (botocore.exceptions.BotoCoreError, ValueError) as exc:
            raise ConfigurationError(
                f"cannot configure the S3 client for {self.name}: {self._redact(str(exc))}"
            ) from exc
        self._bucket_seen = False

    # --- helpers ----------------------------------------------------------------------------

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _key(self, key: str) -> str:
        return validate_key(key, store=self.name)

    def _full(self, key: str) -> str:
        return f"{self._root}{key}"

    def _translate(self, exc: Exception, key: str | None, doing: str) -> StorageError:
        """Map a botocore (or urllib3) error to labelvault's storage errors."""
        if isinstance(exc, StorageError):
            return exc
        what = f"{doing} on {self.name}"
        if isinstance(exc, botocore.exceptions.ClientError):
            code, status, message = error_code(exc)
            detail = self._redact(f"{code or status}: {message}" if message else code or "")
            if code == "NoSuchBucket":
                return BucketNotFound(
                    f"{what}: bucket {self.bucket!r} does not exist; create the bucket first "
                    "(labelvault never creates buckets)",
                    store=self.name,
                    key=key,
                )
            if code in MISSING_KEY_CODES:
                return ObjectNotFound(f"no object {key!r} in {self.name}", store=self.name, key=key)
            if code in ACCESS_CODES or status == 403:
                return StorageAccessDenied(
                    f"{what}: access denied ({detail}); {CREDENTIAL_HINT}",
                    store=self.name,
                    key=key,
                )
            if status >= 500 or status == 429 or code in UNAVAILABLE_CODES:
                return StorageUnavailable(
                    f"{what}: the server answered {detail or status}; retry later",
                    store=self.name,
                    key=key,
                )
            return StorageError(f"{what}: {detail or status}", store=self.name, key=key)
        if isinstance(
            exc,
            botocore.exceptions.NoCredentialsError | botocore.exceptions.PartialCredentialsError,
        ):
            return StorageAccessDenied(
                f"{what}: no S3 credentials found; set LABELVAULT_STORE_S3_ACCESS_KEY and "
                "LABELVAULT_STORE_S3_SECRET_KEY (or the AWS credentials in the environment)",
                store=self.name,
                key=key,
            )
        if isinstance(
            exc,
            botocore.exceptions.ConnectionError
            | botocore.exceptions.HTTPClientError
            | botocore.exceptions.ResponseStreamingError
            | ConnectionError
            | TimeoutError,
        ):
            return StorageUnavailable(
                f"{what}: cannot reach {self.endpoint} "
                f"({type(exc).__name__}); check the endpoint URL and that the server is up",
                store=self.name,
                key=key,
            )
        return StorageError(
            f"{what}: {type(exc).__name__}: {self._redact(str(exc))}", store=self.name, key=key
        )

    def _call(self, key: str | None, doing: str, action: Callable[[], _T]) -> _T:
        try:
            return action()
        except StorageError:
            raise
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise self._translate(exc, key, doing) from exc

    def _raise_missing(self, key: str, exc: Exception) -> NoReturn:
        """A bare 404 (``head``) can mean a missing key or a missing bucket: ask once."""
        if not self._bucket_seen:
            self.check_bucket()
        raise ObjectNotFound(f"no object {key!r} in {self.name}", store=self.name, key=key) from exc

    def check_bucket(self) -> None:
        """Raise ``BucketNotFound``/``StorageAccessDenied``/``StorageUnavailable`` unless the
        bucket is reachable with these credentials."""
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except botocore.exceptions.ClientError as exc:
            code, _, _ = error_code(exc)
            if code in ("404", "NoSuchBucket", "NotFound"):
                raise BucketNotFound(
                    f"bucket {self.bucket!r} does not exist on {self.name}; create the bucket "
                    "first (labelvault never creates buckets)",
                    store=self.name,
                ) from exc
            raise self._translate(exc, None, "checking the bucket") from exc
        except botocore.exceptions.BotoCoreError as exc:
            raise self._translate(exc, None, "checking the bucket") from exc
        self._bucket_seen = True

    # --- the ObjectStore interface ----------------------------------------------------------

    def put(self, key: str, data: bytes) -> str:
        """Create or overwrite ``key``; return the new etag."""
        key = self._key(key)

        def action() -> str:
            response = self._client.put_object(Bucket=self.bucket, Key=self._full(key), Body=data)
            self._bucket_seen = True
            return unquote_etag(response["ETag"])

        return self._call(key, f"writing {key!r}", action)

    def put_if_absent(self, key: str, data: bytes) -> str:
        """Create ``key`` with ``If-None-Match: *``; raise ``AlreadyExists`` if it exists."""
        key = self._key(key)
        for attempt in range(self.max_attempts):
            try:
                response = self._client.put_object(
                    Bucket=self.bucket, Key=self._full(key), Body=data, IfNoneMatch="*"
                )
            except botocore.exceptions.ClientError as exc:
                code, status, _ = error_code(exc)
                if code == "ConditionalRequestConflict" or status == 409:
                    # A concurrent write to the same key is in flight: ask again shortly.
                    if attempt + 1 < self.max_attempts:
                        time.sleep(0.05 * 2**attempt)
                        continue
                    raise StorageUnavailable(
                        f"creating {key!r} on {self.name}: conflicting writes kept racing; "
                        "retry later",
                        store=self.name,
                        key=key,
                    ) from exc
                if code in PRECONDITION_CODES or status == 412:
                    raise AlreadyExists(
                        f"{key!r} already exists in {self.name}", store=self.name, key=key
                    ) from exc
                raise self._translate(exc, key, f"creating {key!r}") from exc
            except botocore.exceptions.BotoCoreError as exc:
                raise self._translate(exc, key, f"creating {key!r}") from exc
            self._bucket_seen = True
            return unquote_etag(response["ETag"])
        raise AssertionError("unreachable")  # pragma: no cover

    def put_if_match(self, key: str, data: bytes, etag: str) -> str:
        """Replace ``key`` with ``If-Match: etag``; raise ``PreconditionFailed`` otherwise."""
        key = self._key(key)
        try:
            response = self._client.put_object(
                Bucket=self.bucket, Key=self._full(key), Body=data, IfMatch=quote_etag(etag)
            )
        except botocore.exceptions.ClientError as exc:
            self._raise_precondition(exc, key, f"replacing {key!r}")
        except botocore.exceptions.BotoCoreError as exc:
            raise self._translate(exc, key, f"replacing {key!r}") from exc
        return unquote_etag(response["ETag"])

    def _raise_precondition(
        self, exc: botocore.exceptions.ClientError, key: str, doing: str
    ) -> NoReturn:
        code, status, _ = error_code(exc)
        if code in PRECONDITION_CODES or code == "NoSuchKey" or status in (409, 412):
            raise PreconditionFailed(
                f"{key!r} in {self.name} changed or vanished since it was read (etag mismatch)",
                store=self.name,
                key=key,
            ) from exc
        raise self._translate(exc, key, doing) from exc

    def get(self, key: str) -> StoredObject:
        """Read a whole object and its etag in one request."""
        key = self._key(key)

        def action() -> StoredObject:
            response = self._client.get_object(Bucket=self.bucket, Key=self._full(key))
            with contextlib.closing(response["Body"]) as body:
                data = body.read()
            return StoredObject(data=data, etag=unquote_etag(response["ETag"]))

        return self._call(key, f"reading {key!r}", action)

    def head(self, key: str) -> ObjectInfo:
        """Describe ``key`` with a HEAD request."""
        key = self._key(key)
        try:
            response = self._client.head_object(Bucket=self.bucket, Key=self._full(key))
        except botocore.exceptions.ClientError as exc:
            code, status, _ = error_code(exc)
            if code in MISSING_KEY_CODES or status == 404:
                self._raise_missing(key, exc)
            raise self._translate(exc, key, f"reading {key!r}") from exc
        except botocore.exceptions.BotoCoreError as exc:
            raise self._translate(exc, key, f"reading {key!r}") from exc
        self._bucket_seen = True
        return ObjectInfo(
            key=key,
            size=int(response["ContentLength"]),
            etag=unquote_etag(response["ETag"]),
            modified=_utc(response.get("LastModified")),
        )

    @contextlib.contextmanager
    def open_read(self, key: str) -> Iterator[IO[bytes]]:
        """Stream an object's body; network errors while reading raise ``StorageUnavailable``."""
        key = self._key(key)

        def action() -> Any:
            return self._client.get_object(Bucket=self.bucket, Key=self._full(key))["Body"]

        body = self._call(key, f"reading {key!r}", action)
        reader = io.BufferedReader(BodySource(self, key, body), buffer_size=1 * MiB)
        with reader:
            yield reader

    @contextlib.contextmanager
    def open_write(self, key: str, *, if_absent: bool = False) -> Iterator[IO[bytes]]:
        """Stream an object in; parts go up as they fill, and the object appears only when the
        upload completes at a clean exit. On an exception the multipart upload is aborted."""
        key = self._key(key)
        sink = UploadSink(self, key, if_absent=if_absent)
        writer = io.BufferedWriter(sink, buffer_size=1 * MiB)
        try:
            yield writer
            if not writer.closed:
                writer.flush()
            sink.finish()
        except BaseException:
            sink.abort()
            raise
        finally:
            writer.close()

    def list(self, prefix: str = "", *, page_size: int = 1000) -> Iterator[ObjectInfo]:
        """Page through ``list_objects_v2`` lazily, ``page_size`` keys per request."""
        validate_prefix(prefix, store=self.name)
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        return self._pages(prefix, min(page_size, 1000))

    def _pages(self, prefix: str, page_size: int) -> Iterator[ObjectInfo]:
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {
                "Bucket": self.bucket,
                "Prefix": self._full(prefix),
                "MaxKeys": page_size,
            }
            if token:
                kwargs["ContinuationToken"] = token
            page = self._call(prefix or None, "listing", functools.partial(self._list_page, kwargs))
            self._bucket_seen = True
            for item in page.get("Contents", []):
                full = item["Key"]
                key = full[len(self._root) :]
                if not full.startswith(self._root) or not _is_valid_key(key):
                    continue
                yield ObjectInfo(
                    key=key,
                    size=int(item.get("Size", 0)),
                    etag=unquote_etag(item.get("ETag", "")),
                    modified=_utc(item.get("LastModified")),
                )
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return

    def _list_page(self, kwargs: dict[str, Any]) -> Any:
        return self._client.list_objects_v2(**kwargs)

    def delete(self, key: str, *, if_match: str | None = None) -> None:
        """Delete ``key`` (missing is fine); with ``if_match``, send ``If-Match``."""
        key = self._key(key)
        try:
            if if_match is None:
                self._client.delete_object(Bucket=self.bucket, Key=self._full(key))
            else:
                self._client.delete_object(
                    Bucket=self.bucket, Key=self._full(key), IfMatch=quote_etag(if_match)
                )
        except botocore.exceptions.ClientError as exc:
            if if_match is not None:
                self._raise_precondition(exc, key, f"deleting {key!r}")
            code, _, _ = error_code(exc)
            if code in MISSING_KEY_CODES:
                return
            raise self._translate(exc, key, f"deleting {key!r}") from exc
        except botocore.exceptions.BotoCoreError as exc:
            raise self._translate(exc, key, f"deleting {key!r}") from exc

    def arrow_filesystem(self) -> tuple[pyarrow.fs.FileSystem, str]:
        """``pyarrow.fs.S3FileSystem`` with this store's endpoint and credentials, and
        ``bucket/prefix``."""
        import pyarrow.fs  # noqa: PLC0415 - pyarrow is heavy; only scans need it

        options: dict[str, Any] = {
            "region": self.region,
            "connect_timeout": self.connect_timeout,
            "request_timeout": self.read_timeout,
            "retry_strategy": pyarrow.fs.AwsStandardS3RetryStrategy(max_attempts=self.max_attempts),
        }
        credentials = self._session.get_credentials()
        if credentials is not None:
            frozen = credentials.get_frozen_credentials()
            options.update(access_key=frozen.access_key, secret_key=frozen.secret_key)
            if frozen.token:
                options["session_token"] = frozen.token
        if self.endpoint_url:
            parts = urlsplit(self.endpoint_url)
            options["endpoint_override"] = parts.netloc.rpartition("@")[2] + parts.path.rstrip("/")
            options["scheme"] = parts.scheme
        if self.addressing_style == "virtual":
            options["force_virtual_addressing"] = True
        root = f"{self.bucket}/{self.prefix}" if self.prefix else self.bucket
        return pyarrow.fs.S3FileSystem(**options), root

    def close(self) -> None:
        """Close the client's connection pool."""
        self._client.close()


def _utc(moment: datetime | None) -> datetime | None:
    return moment.astimezone(UTC) if moment is not None else None


def _is_valid_key(key: str) -> bool:
    try:
        validate_key(key)
    except InvalidKey:
        return False
    return True
