"""Every error labelvault raises, in one hierarchy.

Each concrete error is either *transient* (the same call may succeed later: a server that is
down, a lease somebody else holds) or *terminal* (retrying cannot help: bad credentials, a
missing project, corrupt data). Retry layers decide by the marker alone: HTTP calls are retried
inside the client, coarse steps by Prefect's ``retry_condition_fn``, and both retry only
:class:`TransientError`.

::

    LabelvaultError
    ├── TransientError                         marker: retrying may help
    ├── TerminalError                          marker: retrying cannot help
    ├── ConfigurationError (terminal)          bad settings, unknown backend or platform name
    ├── StorageError (store, key)
    │   ├── InvalidKey (terminal)              "..", absolute, control characters
    │   ├── ObjectNotFound (terminal)
    │   ├── AlreadyExists (terminal)           put_if_absent on an existing key
    │   ├── PreconditionFailed (terminal)      put_if_match / delete if_match with a stale etag
    │   ├── BucketNotFound (terminal)
    │   ├── StorageAccessDenied (terminal)     wrong credentials, denied by policy
    │   └── StorageUnavailable (transient)     unreachable endpoint, timeouts, 5xx
    ├── CatalogError (project, version)
    │   ├── LeaseHeld (transient)              reserve gave up waiting; names holder and expiry
    │   ├── LeaseLost (terminal)               commit/cancel with a token that no longer holds
    │   ├── VersionNotFound (terminal)
    │   ├── CorruptRecord (terminal)           a catalog record that does not parse
    │   └── UnsupportedRecordVersion (terminal) written by a newer labelvault
    ├── SnapshotError (key)
    │   ├── IntegrityError (terminal)          size or checksum mismatch, missing chunk
    │   ├── UnsupportedFormat (terminal)       a format version this build cannot read
    │   └── SchemaMismatch (terminal)          rows that do not fit a table's schema or order
    ├── PlatformError (platform, project, status)
    │   ├── AuthenticationError (terminal)     401/403: the token is wrong or lacks rights
    │   ├── PlatformNotFound (terminal)        project, dataset or version does not exist
    │   ├── RequestRejected (terminal)         other 4xx: the request itself is wrong
    │   ├── UnsupportedProject (terminal)      a project type labelvault cannot capture yet
    │   ├── PaginationError (transient)        pages disagree with their own totals
    │   └── PlatformUnavailable (transient)    unreachable, timeouts, 408/429/5xx after retries
    └── RestoreError (terminal) (project, created_project, progress)

Messages never contain secrets: tokens are redacted at the boundary where foreign errors are
translated (see :mod:`labelvault.http.redaction`).
"""

from __future__ import annotations

__all__ = [
    "AlreadyExists",
    "AuthenticationError",
    "BucketNotFound",
    "CatalogError",
    "ConfigurationError",
    "CorruptRecord",
    "IntegrityError",
    "InvalidKey",
    "LabelvaultError",
    "LeaseHeld",
    "LeaseLost",
    "ObjectNotFound",
    "PaginationError",
    "PlatformError",
    "PlatformNotFound",
    "PlatformUnavailable",
    "PreconditionFailed",
    "RequestRejected",
    "RestoreError",
    "SchemaMismatch",
    "SnapshotError",
    "StorageAccessDenied",
    "StorageError",
    "StorageUnavailable",
    "TerminalError",
    "TransientError",
    "UnsupportedFormat",
    "UnsupportedProject",
    "UnsupportedRecordVersion",
    "VersionNotFound",
    "is_transient",
]


class LabelvaultError(Exception):
    """Base of every error raised by labelvault."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class TransientError(LabelvaultError):
    """Marker: the operation may succeed if retried later."""


class TerminalError(LabelvaultError):
    """Marker: retrying the same operation cannot succeed."""


def is_transient(exc: BaseException) -> bool:
    """True when ``exc`` is a labelvault error that a retry may cure."""
    return isinstance(exc, TransientError)


class ConfigurationError(TerminalError):
    """Settings are missing or contradictory, or a backend/platform name is unknown."""


# --- storage ------------------------------------------------------------------------------


class StorageError(LabelvaultError):
    """An object store operation failed. ``store`` names the store, never its credentials."""

    def __init__(self, message: str, *, store: str, key: str | None = None) -> None:
        super().__init__(message)
        self.store = store
        self.key = key


class InvalidKey(StorageError, TerminalError):
    """A key that could escape the store's root or is not representable on every backend."""


class ObjectNotFound(StorageError, TerminalError):
    """No object under the key."""


class AlreadyExists(StorageError, TerminalError):
    """A create-only write found an object already under the key."""


class PreconditionFailed(StorageError, TerminalError):
    """A compare-and-swap found a different etag (or no object) under the key."""


class BucketNotFound(StorageError, TerminalError):
    """The bucket does not exist; labelvault never creates buckets implicitly."""


class StorageAccessDenied(StorageError, TerminalError):
    """The credentials are wrong or lack permission."""


class StorageUnavailable(StorageError, TransientError):
    """The store could not be reached or answered with a server error."""


# --- catalog ------------------------------------------------------------------------------


class CatalogError(LabelvaultError):
    """A versions catalog operation failed for ``project`` (and ``version`` when known)."""

    def __init__(self, message: str, *, project: str, version: int | None = None) -> None:
        super().__init__(message)
        self.project = project
        self.version = version


class LeaseHeld(CatalogError, TransientError):
    """Another capture holds the project's reservation; names the holder and its expiry."""

    def __init__(self, message: str, *, project: str, holder: str, expires_at: str) -> None:
        super().__init__(message, project=project)
        self.holder = holder
        self.expires_at = expires_at


class LeaseLost(CatalogError, TerminalError):
    """The reservation expired and was taken over, or was cancelled."""


class VersionNotFound(CatalogError, TerminalError):
    """No committed version with that number or id."""


class CorruptRecord(CatalogError, TerminalError):
    """A catalog record exists but cannot be parsed."""


class UnsupportedRecordVersion(CatalogError, TerminalError):
    """A catalog record written by a newer labelvault; refused rather than misread."""


# --- snapshot -----------------------------------------------------------------------------


class SnapshotError(LabelvaultError):
    """A snapshot could not be written or read. ``key`` names the object when known."""

    def __init__(self, message: str, *, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class IntegrityError(SnapshotError, TerminalError):
    """A chunk or manifest does not match its recorded size or checksum, or is missing."""


class UnsupportedFormat(SnapshotError, TerminalError):
    """A format version this build of labelvault cannot read."""


class SchemaMismatch(SnapshotError, TerminalError):
    """Rows that do not fit their table's schema, or arrive out of key order."""


# --- platforms ----------------------------------------------------------------------------


class PlatformError(LabelvaultError):
    """A call to an annotation platform failed."""

    def __init__(
        self,
        message: str,
        *,
        platform: str,
        project: str | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.platform = platform
        self.project = project
        self.status = status


class AuthenticationError(PlatformError, TerminalError):
    """The platform refused the credentials (401/403)."""


class PlatformNotFound(PlatformError, TerminalError):
    """The project (or another entity) does not exist on the platform."""


class RequestRejected(PlatformError, TerminalError):
    """The platform rejected the request as invalid (4xx other than auth and not-found)."""


class UnsupportedProject(PlatformError, TerminalError):
    """The project exists but is of a type labelvault cannot handle yet."""


class PaginationError(PlatformError, TransientError):
    """Pages disagree with their own totals: entities moved during the listing."""


class PlatformUnavailable(PlatformError, TransientError):
    """The platform could not be reached or kept failing after retries."""


# --- restore ------------------------------------------------------------------------------


class RestoreError(TerminalError):
    """A restore stopped part way; says which project was created and how far it got."""

    def __init__(
        self,
        message: str,
        *,
        project: str,
        created_project: str | None = None,
        progress: dict[str, int] | None = None,
        transient: bool = False,
    ) -> None:
        super().__init__(message)
        self.project = project
        self.created_project = created_project
        self.progress = dict(progress or {})
        #: It stopped on an error a retry may cure (the platform was busy, a timeout): running
        #: it again soon, with the same journal, may finish it.
        self.transient = transient


# --- query --------------------------------------------------------------------------------
#
#     LabelvaultError
#     └── QueryError (terminal)                SQL over a version that could not run
#         ├── QueryRefused                     not one SELECT over the version's tables
#         ├── QueryTimedOut                    ran past its time limit and was interrupted
#         └── QueryFailed                      DuckDB rejected or could not finish it

__all__ += ["QueryError", "QueryFailed", "QueryRefused", "QueryTimedOut"]


class QueryError(TerminalError):
    """SQL over a version could not run; the message is one line and quotes no host data."""


class QueryRefused(QueryError):
    """The SQL is not exactly one SELECT over the version's tables (files, settings, writes)."""


class QueryTimedOut(QueryError):
    """The query ran longer than its time limit and was interrupted."""

    def __init__(self, message: str, *, seconds: float) -> None:
        super().__init__(message)
        self.seconds = seconds


class QueryFailed(QueryError):
    """DuckDB rejected the query or failed while running it (syntax, unknown column, memory)."""
