"""Streaming reads and multipart uploads of :class:`~labelvault.storage.s3.S3Store`."""

from __future__ import annotations

import contextlib
import io
from typing import TYPE_CHECKING, Any

import botocore.exceptions

from labelvault.errors import (
    AlreadyExists,
    StorageError,
    StorageUnavailable,
)
from labelvault.storage.s3_wire import MAX_PARTS, PRECONDITION_CODES, error_code, unquote_etag

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

    from labelvault.storage.s3 import S3Store

__all__ = ["BodySource", "UploadSink"]


class BodySource(io.RawIOBase):
    """A botocore streaming body as a raw binary stream, with errors translated."""

    def __init__(self, store: S3Store, key: str, body: Any) -> None:
        self._store = store
        self._key = key
        self._body = body

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        try:
            data: bytes = self._body.read(len(view))
        except (
            botocore.exceptions.BotoCoreError,
            ConnectionError,
            TimeoutError,
            OSError,
        ) as exc:
            raise self._store._translate(exc, self._key, f"reading {self._key!r}") from exc
        except Exception as exc:  # urllib3 errors that botocore does not wrap
            raise StorageUnavailable(
                f"reading {self._key!r} on {self._store.name}: the stream broke "
                f"({type(exc).__name__}); retry later",
                store=self._store.name,
                key=self._key,
            ) from exc
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            with contextlib.suppress(Exception):
                self._body.close()
        super().close()


class UploadSink(io.RawIOBase):
    """Collects written bytes; a single PUT for small objects, a multipart upload otherwise.

    Nothing becomes visible before :meth:`finish`; :meth:`abort` discards uploaded parts.
    """

    def __init__(self, store: S3Store, key: str, *, if_absent: bool) -> None:
        self._store = store
        self._key = key
        self._full = store._full(key)
        self._if_absent = if_absent
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self._done = False
        self._aborted = False
        self._written = 0
        self.etag: str | None = None

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._written

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        if self._aborted:
            return len(view)  # the upload was discarded; drop what the buffer still flushes
        if self._done:
            raise ValueError("write to a finished upload")
        self._buffer += view
        self._written += len(view)
        self._upload_full_parts()
        return len(view)

    def _client(self) -> S3Client:
        return self._store._client

    def _upload_full_parts(self) -> None:
        store = self._store
        if self._upload_id is None and (
            len(self._buffer) < store.multipart_threshold or len(self._buffer) < store.part_size
        ):
            return
        while len(self._buffer) >= store.part_size:
            self._upload_part(bytes(self._buffer[: store.part_size]))
            del self._buffer[: store.part_size]

    def _start(self) -> str:
        def action() -> str:
            response = self._client().create_multipart_upload(
                Bucket=self._store.bucket, Key=self._full
            )
            return response["UploadId"]

        self._upload_id = self._store._call(self._key, f"uploading {self._key!r}", action)
        return self._upload_id

    def _upload_part(self, data: bytes) -> None:
        upload_id = self._upload_id or self._start()
        number = len(self._parts) + 1
        if number > MAX_PARTS:
            raise StorageError(
                f"uploading {self._key!r} on {self._store.name}: more than {MAX_PARTS} parts; "
                "raise part_size",
                store=self._store.name,
                key=self._key,
            )

        def action() -> dict[str, Any]:
            response = self._client().upload_part(
                Bucket=self._store.bucket,
                Key=self._full,
                UploadId=upload_id,
                PartNumber=number,
                Body=data,
            )
            part: dict[str, Any] = {"ETag": response["ETag"], "PartNumber": number}
            for field in ("ChecksumCRC32", "ChecksumCRC32C", "ChecksumCRC64NVME"):
                if field in response:
                    part[field] = response[field]
            return part

        self._parts.append(self._store._call(self._key, f"uploading {self._key!r}", action))

    def finish(self) -> None:
        """Publish the object: one PUT, or the rest of the parts and the complete call."""
        if self._done:
            return
        store = self._store
        if self._upload_id is None and len(self._buffer) < store.multipart_threshold:
            data = bytes(self._buffer)
            self.etag = (
                store.put_if_absent(self._key, data)
                if self._if_absent
                else store.put(self._key, data)
            )
            self._done = True
            return
        while self._buffer:
            size = min(len(self._buffer), store.part_size)
            self._upload_part(bytes(self._buffer[:size]))
            del self._buffer[:size]
        upload_id = self._upload_id
        assert upload_id is not None
        kwargs: dict[str, Any] = {
            "Bucket": store.bucket,
            "Key": self._full,
            "UploadId": upload_id,
            "MultipartUpload": {"Parts": self._parts},
        }
        if self._if_absent:
            kwargs["IfNoneMatch"] = "*"
        try:
            response = self._client().complete_multipart_upload(**kwargs)
        except botocore.exceptions.ClientError as exc:
            code, status, _ = error_code(exc)
            if self._if_absent and (code in PRECONDITION_CODES or status in (409, 412)):
                raise AlreadyExists(
                    f"{self._key!r} already exists in {store.name}", store=store.name, key=self._key
                ) from exc
            raise store._translate(exc, self._key, f"uploading {self._key!r}") from exc
        except botocore.exceptions.BotoCoreError as exc:
            raise store._translate(exc, self._key, f"uploading {self._key!r}") from exc
        self._done = True
        self.etag = unquote_etag(response["ETag"])

    def abort(self) -> None:
        """Discard whatever was uploaded; best effort, never raises."""
        self._done = True
        self._aborted = True
        self._buffer.clear()
        if self._upload_id is not None:
            with contextlib.suppress(Exception):
                self._client().abort_multipart_upload(
                    Bucket=self._store.bucket, Key=self._full, UploadId=self._upload_id
                )
            self._upload_id = None
