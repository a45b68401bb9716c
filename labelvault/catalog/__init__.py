"""The versions catalog: reserve / commit / cancel, list / get / latest, update, previews,
delete.

See :mod:`labelvault.catalog.catalog` for the protocol and the layout on the object store.
"""

from __future__ import annotations

from labelvault.catalog.catalog import BrokenLease, Catalog, DamagedVersion, VersionList
from labelvault.catalog.lease import HolderState, ReserveWait, default_holder
from labelvault.catalog.records import (
    RECORD_SCHEMA_VERSION,
    PreviewLink,
    lease_key,
    meta_key,
    version_key,
)
from labelvault.models import CommitResult, Reservation, VersionInfo

__all__ = [
    "RECORD_SCHEMA_VERSION",
    "BrokenLease",
    "Catalog",
    "CommitResult",
    "DamagedVersion",
    "HolderState",
    "PreviewLink",
    "Reservation",
    "ReserveWait",
    "VersionInfo",
    "VersionList",
    "default_holder",
    "lease_key",
    "meta_key",
    "version_key",
]
