"""Reading the catalog: version records and metadata, each checked against its manifest.

:class:`CatalogReads` is the reading half of :class:`~labelvault.catalog.catalog.Catalog`;
a damaged version never stops a listing (:class:`VersionList` names it).
"""

from __future__ import annotations

import builtins
import logging
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from labelvault.catalog.integrity import check_version, content_addressed, record_problem
from labelvault.catalog.records import (
    VersionMeta,
    VersionRecord,
    meta_key,
    meta_prefix,
    number_from_key,
    parse_record,
    version_key,
    versions_prefix,
)
from labelvault.errors import (
    CatalogError,
    CorruptRecord,
    IntegrityError,
    ObjectNotFound,
    UnsupportedFormat,
    UnsupportedRecordVersion,
    VersionNotFound,
)
from labelvault.models import ProjectRef, VersionInfo, as_utc
from labelvault.snapshot.manifest import Manifest
from labelvault.storage.base import ObjectStore

__all__ = ["CAS_ATTEMPTS", "DAMAGE", "CatalogReads", "DamagedVersion", "VersionList", "tag_tuple"]

log = logging.getLogger("labelvault.catalog")

#: Errors that make one version unreadable without stopping the others.
DAMAGE = (CorruptRecord, UnsupportedRecordVersion, IntegrityError, UnsupportedFormat)
_READ_THREADS = 16
_T = TypeVar("_T")


@dataclass(frozen=True)
class DamagedVersion:
    """A version that exists (its record key is listed) but cannot be read back whole."""

    number: int
    key: str
    problem: str

    def summary(self) -> dict[str, object]:
        """Plain values for logs and reports."""
        return {"version": self.number, "key": self.key, "problem": self.problem}


class VersionList(list[VersionInfo]):
    """The readable versions of a project, ascending; ``damaged`` names the others."""

    def __init__(
        self, versions: Iterable[VersionInfo] = (), damaged: Iterable[DamagedVersion] = ()
    ) -> None:
        super().__init__(versions)
        self.damaged: tuple[DamagedVersion, ...] = tuple(damaged)


#: Compare-and-swap attempts of a metadata or lease rewrite before giving up.
CAS_ATTEMPTS = 20


def tag_tuple(tags: Sequence[str]) -> tuple[str, ...]:
    """``tags`` as a tuple; a lone string is refused (it is not a list of tags)."""
    if isinstance(tags, str):
        raise TypeError(f"tags must be a sequence of strings, not the string {tags!r}")
    return tuple(tags)


class CatalogReads:
    """The versions of projects on one object store, as read back (and checked)."""

    store: ObjectStore
    _clock: Callable[[], datetime]

    def now(self) -> datetime:
        """The catalog's clock, in UTC."""
        return as_utc(self._clock())

    def list(self, project: ProjectRef) -> VersionList:
        """Every readable version of ``project``, ascending by number.

        A version whose record or manifest cannot be read back whole does not stop the
        listing: it is left out, named in the result's ``damaged`` (and logged).
        """
        numbers = self._numbers(project)
        with_meta = self._meta_numbers(project)
        found = self._parallel(lambda number: self._attempt(project, number, with_meta), numbers)
        versions = [info for info in found if isinstance(info, VersionInfo)]
        damaged = [info for info in found if isinstance(info, DamagedVersion)]
        for bad in damaged:
            log.warning("version %d of project %s is damaged: %s", bad.number, project, bad.problem)
        return VersionList(versions, damaged)

    def _attempt(
        self, project: ProjectRef, number: int, with_meta: set[int] | None
    ) -> VersionInfo | DamagedVersion | None:
        try:
            return self._load_optional(project, number, with_meta)
        except DAMAGE as exc:
            key = getattr(exc, "key", None) or version_key(project, number)
            return DamagedVersion(number, key, exc.message)

    def get(self, project: ProjectRef, ref: int | str) -> VersionInfo:
        """The version with number ``ref`` (an int, or a string of digits) or id ``ref``.

        Raises:
            VersionNotFound: no such version.
            IntegrityError: its record and its manifest disagree, or the manifest is missing
                or corrupt (the message names both objects).
            CorruptRecord: its record (or metadata) does not parse.
        """
        if isinstance(ref, bool) or not isinstance(ref, int | str):
            raise TypeError(f"a version is named by its number or id, not {ref!r}")
        if isinstance(ref, int) or ref.isdigit():
            number = int(ref)
            info = self._load_optional(project, number, None)
            if info is None:
                raise self._not_found(project, ref, number)
            return info
        numbers = self._numbers(project)
        records = self._parallel(lambda number: self._record_or_none(project, number), numbers)
        for record in records:
            if record is not None and record.id == ref:
                self._check(record)
                return record.info(self._read_meta(project, record.number))
        raise self._not_found(project, ref, None)

    def latest(self, project: ProjectRef) -> VersionInfo | None:
        """The highest-numbered version of ``project``, or ``None`` before the first commit.

        Raises:
            IntegrityError, CorruptRecord: the highest-numbered version is damaged.
        """
        numbers = self._numbers(project)
        return self._load(project, numbers[-1]) if numbers else None

    def manifest(self, version: VersionInfo) -> Manifest:
        """The manifest of ``version``, verified on its own and against the version's record.

        Raises:
            VersionNotFound: the version was deleted meanwhile.
            IntegrityError: the manifest is missing or corrupt, or does not match the record.
        """
        record = self._read_record(version.project, version.number)
        if record is None or record.id != version.id:
            raise self._not_found(version.project, version.number, version.number)
        return check_version(self.store, record)

    def record(self, project: ProjectRef, number: int) -> VersionRecord | None:
        """Version ``number``'s stored record as it is, unchecked; ``None`` when there is none.

        Raises:
            CorruptRecord, UnsupportedRecordVersion: the record cannot be parsed.
        """
        return self._read_record(project, number)

    def numbers(self, project: ProjectRef) -> builtins.list[int]:
        """The numbers of every version record stored, readable or not, ascending."""
        return self._numbers(project)

    def _head(self, project: ProjectRef) -> tuple[int, VersionInfo | None]:
        """The highest version number in use (0 for none) and that version, when it can be
        trusted (``None`` when it is damaged: then nothing counts as "unchanged")."""
        numbers = self._numbers(project)
        if not numbers:
            return 0, None
        return numbers[-1], self._trusted(project, numbers[-1])

    def _trusted(self, project: ProjectRef, number: int) -> VersionInfo | None:
        try:
            return self._load_optional(project, number, None)
        except DAMAGE as exc:
            log.warning(
                "version %d of project %s is damaged, so it is no baseline: %s",
                number,
                project,
                exc.message,
            )
            return None

    def _check(self, record: VersionRecord) -> None:
        """Raise unless the record agrees with its manifest (when the manifest is checkable)."""
        if content_addressed(record):
            check_version(self.store, record)
            return
        problem = record_problem(record)
        if problem is not None:
            raise IntegrityError(
                f"version {record.number} of project {record.project} is damaged: {problem}",
                key=version_key(record.project, record.number),
            )

    def _record_or_none(self, project: ProjectRef, number: int) -> VersionRecord | None:
        try:
            return self._read_record(project, number)
        except DAMAGE:
            return None

    def _not_found(
        self, project: ProjectRef, ref: int | str, number: int | None
    ) -> VersionNotFound:
        return VersionNotFound(
            f"project {project} has no version {ref!r}", project=str(project), version=number
        )

    def _numbers(self, project: ProjectRef) -> builtins.list[int]:
        return sorted(
            number
            for info in self.store.list(versions_prefix(project))
            if (number := number_from_key(info.key)) is not None
        )

    def _meta_numbers(self, project: ProjectRef) -> set[int]:
        return {
            number
            for info in self.store.list(meta_prefix(project))
            if (number := number_from_key(info.key)) is not None
        }

    def _read_record(self, project: ProjectRef, number: int) -> VersionRecord | None:
        key = version_key(project, number)
        try:
            data = self.store.get(key).data
        except ObjectNotFound:
            return None
        record = parse_record(VersionRecord, data, key=key, project=project, version=number)
        if record.number != number or record.project != project:
            raise _misplaced(key, project, number, record)
        return record

    def _read_meta_etag(self, project: ProjectRef, number: int) -> tuple[VersionMeta, str] | None:
        key = meta_key(project, number)
        try:
            stored = self.store.get(key)
        except ObjectNotFound:
            return None
        meta = parse_record(VersionMeta, stored.data, key=key, project=project, version=number)
        return meta, stored.etag

    def _read_meta(self, project: ProjectRef, number: int) -> VersionMeta | None:
        found = self._read_meta_etag(project, number)
        return None if found is None else found[0]

    def _load_optional(
        self, project: ProjectRef, number: int, with_meta: set[int] | None
    ) -> VersionInfo | None:
        record = self._read_record(project, number)
        if record is None:
            return None
        self._check(record)
        wanted_meta = with_meta is None or number in with_meta
        return record.info(self._read_meta(project, number) if wanted_meta else None)

    def _load(self, project: ProjectRef, number: int) -> VersionInfo:
        info = self._load_optional(project, number, None)
        if info is None:
            raise self._not_found(project, number, number)
        return info

    def _parallel(self, read: Callable[[int], _T], numbers: Sequence[int]) -> builtins.list[_T]:
        if len(numbers) <= 2:
            return [read(number) for number in numbers]
        with ThreadPoolExecutor(max_workers=min(_READ_THREADS, len(numbers))) as pool:
            return list(pool.map(read, numbers))


def _misplaced(key: str, project: ProjectRef, number: int, record: VersionRecord) -> CatalogError:
    return CorruptRecord(
        f"catalog record {key} is corrupt: it describes version {record.number} of project "
        f"{record.project}, not version {number} of {project}",
        project=str(project),
        version=number,
    )
