"""HTTP plumbing shared by the platform adapters: client factory, retries, pages, redaction."""

from __future__ import annotations

from labelvault.http.client import ApiClient, CallContext, FileField, build_client, default_error
from labelvault.http.multipart import MultipartPart, iter_multipart
from labelvault.http.pagination import (
    BasePaginator,
    CursorPaginator,
    NextUrlPaginator,
    Page,
    PageNumberPaginator,
    PageRequest,
    SinglePagePaginator,
    paginate,
)
from labelvault.http.redaction import Redactor, redact_headers, redact_text, redact_url
from labelvault.http.retrying import (
    RETRY_STATUSES,
    RetryableStatus,
    parse_retry_after,
    retry_policy,
)
from labelvault.http.settings import RequestSettings

__all__ = [
    "RETRY_STATUSES",
    "ApiClient",
    "BasePaginator",
    "CallContext",
    "CursorPaginator",
    "FileField",
    "MultipartPart",
    "NextUrlPaginator",
    "Page",
    "PageNumberPaginator",
    "PageRequest",
    "Redactor",
    "RequestSettings",
    "RetryableStatus",
    "SinglePagePaginator",
    "build_client",
    "default_error",
    "iter_multipart",
    "paginate",
    "parse_retry_after",
    "redact_headers",
    "redact_text",
    "redact_url",
    "retry_policy",
]
