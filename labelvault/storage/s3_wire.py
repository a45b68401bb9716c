"""S3 on the wire: part sizes, error codes and etags, shared by the store and its streams."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import botocore.exceptions

if TYPE_CHECKING:
    pass


MiB = 1024 * 1024
DEFAULT_PART_SIZE = 8 * MiB
MIN_PART_SIZE = 5 * MiB
MAX_PARTS = 10_000
ACCESS_CODES = frozenset(
    {
        "AccessDenied",
        "AllAccessDisabled",
        "InvalidAccessKeyId",
        "InvalidToken",
        "ExpiredToken",
        "SignatureDoesNotMatch",
        "AuthorizationHeaderMalformed",
        "InvalidSecurity",
        "403",
        "Forbidden",
    }
)
UNAVAILABLE_CODES = frozenset(
    {
        "InternalError",
        "ServiceUnavailable",
        "SlowDown",
        "RequestTimeout",
        "RequestTimeTooSkewed",
        "Throttling",
        "ThrottlingException",
    }
)
PRECONDITION_CODES = frozenset({"PreconditionFailed", "412", "ConditionalRequestConflict"})
MISSING_KEY_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
CREDENTIAL_HINT = (
    "check LABELVAULT_STORE_S3_ACCESS_KEY and LABELVAULT_STORE_S3_SECRET_KEY (or the AWS "
    "credentials in the environment) and the bucket's policy"
)


def unquote_etag(etag: str) -> str:
    return etag.strip('"')


def quote_etag(etag: str) -> str:
    return etag if etag.startswith('"') else f'"{etag}"'


def error_code(exc: botocore.exceptions.ClientError) -> tuple[str, int, str]:
    error: Mapping[str, Any] = exc.response.get("Error", {})
    meta: Mapping[str, Any] = exc.response.get("ResponseMetadata", {})
    return (
        str(error.get("Code", "")),
        int(meta.get("HTTPStatusCode", 0) or 0),
        str(error.get("Message", "")),
    )
