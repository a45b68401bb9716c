"""Retention: which versions to keep, and deleting the rest with the data only they use.

A :class:`RetentionPolicy` keeps a version when *any* of its rules does: among the last
``keep_last``, tagged (``keep_tagged``), or younger than ``keep_younger_than``. The latest
version is always kept: it is the baseline for "no change", and keeping it means version
numbers are never reused.

:func:`plan_expiry` only decides. :func:`expire` carries a plan out, and is a dry run unless
``dry_run=False``. A real run holds the project's reservation lease throughout (so no capture
can pick up a chunk that is about to be deleted), then:

1. deletes the records of the versions that go (the moment they stop existing);
2. deletes the objects under ``<prefix>/chunks/`` and ``<prefix>/manifests/`` that only those
   versions referenced;
3. collects orphans: objects there that no version references at all (left by failed,
   cancelled or "no change" captures) once they are older than a grace period (by default the
   lease duration), so a capture's fresh chunks are never touched, even by a clock that is off.

A version's preview project (see :mod:`labelvault.preview`) goes with it: the report lists the
previews of the expired versions (``previews``), and a real run deletes each one on its
platform (through the caller's ``delete_preview``) before the version's record, so a failed
deletion leaves the version and its link in place for the next run. A real run that would
expire a previewed version without a way to delete the preview deletes nothing.

Objects that a live version references are never deleted, whatever else referenced them. The
references of a version come from the caller (``referenced_keys``, e.g. a manifest's
``referenced_keys()``); its ``manifest_key`` always counts as referenced.

Damage stays local. A version that cannot be read back whole (its record does not parse, its
manifest is missing, corrupt or disagrees with the record) is never deleted, and since what it
references cannot be known, no chunk or manifest counts as provably unused: the run deletes
the records of the healthy expired versions only, keeps every object it would otherwise have
deleted (``held``), and names the damage in the report (``damaged``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from pydantic import Field, model_validator

from labelvault.catalog import Catalog, PreviewLink, Reservation, default_holder
from labelvault.catalog.reading import DAMAGE
from labelvault.errors import ConfigurationError
from labelvault.models import FrozenModel, ProjectRef, VersionInfo, as_utc
from labelvault.storage.base import ObjectInfo, ObjectStore

__all__ = [
    "DeletePreview",
    "ExpiryPlan",
    "ExpiryReport",
    "ObjectSet",
    "RetentionPolicy",
    "VersionDecision",
    "expire",
    "plan_expiry",
]

#: Deletes a preview project on its platform (one already gone counts as deleted).
DeletePreview = Callable[[PreviewLink], None]

#: The folders under a project's prefix that retention may delete from.
DATA_FOLDERS = ("chunks", "manifests")


class RetentionPolicy(FrozenModel):
    """Which versions to keep; a version is kept when any rule keeps it (and the latest always).

    At least one of ``keep_last`` and ``keep_younger_than`` must be set, so that a policy
    never expires everything untagged by accident.
    """

    keep_last: int | None = Field(default=None, ge=0)
    keep_tagged: bool = True
    keep_younger_than: timedelta | None = None

    @model_validator(mode="after")
    def _some_rule(self) -> RetentionPolicy:
        if self.keep_last is None and self.keep_younger_than is None:
            raise ValueError("set keep_last or keep_younger_than (or both)")
        if self.keep_younger_than is not None and self.keep_younger_than <= timedelta(0):
            raise ValueError("keep_younger_than must be a positive duration")
        return self


class VersionDecision(FrozenModel):
    """One version's fate under a policy, and why."""

    version: VersionInfo
    keep: bool
    reasons: tuple[str, ...]


class ExpiryPlan(FrozenModel):
    """What a policy decides for every version of a project, ascending by number."""

    project: ProjectRef
    policy: RetentionPolicy
    now: datetime
    decisions: tuple[VersionDecision, ...]

    @property
    def kept(self) -> tuple[VersionInfo, ...]:
        """The versions that stay."""
        return tuple(d.version for d in self.decisions if d.keep)

    @property
    def expired(self) -> tuple[VersionInfo, ...]:
        """The versions that go."""
        return tuple(d.version for d in self.decisions if not d.keep)


class ObjectSet(FrozenModel):
    """Some objects of the store: their keys, how many, and their total size."""

    keys: tuple[str, ...] = ()
    count: int = 0
    bytes: int = 0

    @classmethod
    def of(cls, infos: Iterable[ObjectInfo]) -> ObjectSet:
        """The set of the given objects, sorted by key."""
        chosen = sorted(infos, key=lambda info: info.key)
        return cls(
            keys=tuple(info.key for info in chosen),
            count=len(chosen),
            bytes=sum(info.size for info in chosen),
        )


class ExpiryReport(FrozenModel):
    """What :func:`expire` deleted, or with ``dry_run`` would delete."""

    project: ProjectRef
    dry_run: bool
    plan: ExpiryPlan
    grace: timedelta
    versions_deleted: tuple[int, ...]
    freed: ObjectSet = Field(description="objects only the expired versions referenced")
    orphans: ObjectSet = Field(description="unreferenced objects older than the grace period")
    fresh_orphans: ObjectSet = Field(description="unreferenced but too young: kept")
    live: ObjectSet = Field(description="objects live versions reference: kept")
    damaged: tuple[str, ...] = Field(
        default=(), description="versions that cannot be read, and why: they are kept"
    )
    held: ObjectSet = Field(
        default_factory=ObjectSet,
        description="objects kept only because a damaged version might reference them",
    )
    previews: dict[int, PreviewLink] = Field(
        default_factory=dict,
        description="preview projects of the expired versions, by version: deleted with them",
    )
    journals: tuple[str, ...] = Field(
        default=(),
        description="restore journals nobody will resume (older than the grace period), or the "
        "step records of finished ones: removed",
    )

    @property
    def deleted_count(self) -> int:
        """Objects deleted (or that would be), versions' records not counted."""
        return self.freed.count + self.orphans.count

    @property
    def deleted_bytes(self) -> int:
        """Bytes of the objects deleted (or that would be)."""
        return self.freed.bytes + self.orphans.bytes

    def summary(self) -> dict[str, Any]:
        """Plain values for logs, artifacts and flow results."""
        return {
            "project": str(self.project),
            "dry_run": self.dry_run,
            "versions_kept": [v.number for v in self.plan.kept],
            "versions_deleted": list(self.versions_deleted),
            "objects_deleted": self.deleted_count,
            "bytes_deleted": self.deleted_bytes,
            "orphans_deleted": self.orphans.count,
            "fresh_orphans_kept": self.fresh_orphans.count,
            "objects_live": self.live.count,
            "bytes_live": self.live.bytes,
            "damaged": list(self.damaged),
            "objects_held_for_damaged": self.held.count,
            "previews_deleted": {
                number: link.project_id for number, link in sorted(self.previews.items())
            },
            "journals_removed": list(self.journals),
        }


def plan_expiry(
    catalog: Catalog,
    project: ProjectRef,
    policy: RetentionPolicy,
    *,
    now: datetime | None = None,
) -> ExpiryPlan:
    """Decide, for every version of ``project``, whether ``policy`` keeps it and why."""
    return _plan(catalog.list(project), project, policy, catalog.now() if now is None else now)


def _plan(
    versions: list[VersionInfo], project: ProjectRef, policy: RetentionPolicy, now: datetime
) -> ExpiryPlan:
    now = as_utc(now)
    ordered = sorted(versions, key=lambda v: v.number)
    last = {v.number for v in ordered[max(0, len(ordered) - (policy.keep_last or 0)) :]}
    decisions = []
    for index, version in enumerate(ordered):
        keep: list[str] = []
        drop: list[str] = []
        if index == len(ordered) - 1:
            keep.append("latest")
        if policy.keep_last is not None:
            if version.number in last:
                keep.append(f"among the last {policy.keep_last}")
            else:
                drop.append(f"not among the last {policy.keep_last}")
        if policy.keep_tagged:
            if version.tags:
                keep.append(f"tagged {', '.join(version.tags)}")
            else:
                drop.append("untagged")
        if policy.keep_younger_than is not None:
            if now - version.created_at < policy.keep_younger_than:
                keep.append(f"younger than {policy.keep_younger_than}")
            else:
                drop.append(f"not younger than {policy.keep_younger_than}")
        decisions.append(
            VersionDecision(version=version, keep=bool(keep), reasons=tuple(keep or drop))
        )
    return ExpiryPlan(project=project, policy=policy, now=now, decisions=tuple(decisions))


def expire(
    store: ObjectStore,
    catalog: Catalog,
    project: ProjectRef,
    policy: RetentionPolicy,
    *,
    referenced_keys: Callable[[VersionInfo], Iterable[str]],
    dry_run: bool = True,
    now: datetime | None = None,
    grace: timedelta | None = None,
    holder: str | None = None,
    delete_preview: DeletePreview | None = None,
) -> ExpiryReport:
    """Apply ``policy`` to ``project``: delete expired versions, their data and old orphans.

    ``referenced_keys(version)`` gives the objects a version needs (its chunks; its manifest
    counts anyway). ``delete_preview`` deletes an expired version's preview project; a real
    run that needs it and lacks it raises before deleting anything. ``grace`` defaults to the
    catalog's lease duration; ``now`` to the catalog's clock. A dry run (the default) reads
    only and deletes nothing.

    Raises:
        LeaseHeld: (real runs) a capture kept the project reserved for the catalog's wait.
        ConfigurationError: (real runs) an expired version has a preview and no
            ``delete_preview`` was given.
    """
    grace = timedelta(seconds=catalog.lease_seconds) if grace is None else grace
    if grace < timedelta(0):
        raise ValueError("grace must not be negative")
    if dry_run:
        return _expire(
            store,
            catalog,
            project,
            policy,
            referenced_keys=referenced_keys,
            lease=None,
            now=now,
            grace=grace,
            delete_preview=None,
        )
    reserved = catalog.reserve(project, holder=f"retention {holder or default_holder()}")
    assert isinstance(reserved, Reservation)  # without source_updated_at: always a reservation
    try:
        return _expire(
            store,
            catalog,
            project,
            policy,
            referenced_keys=referenced_keys,
            lease=reserved,
            now=now,
            grace=grace,
            delete_preview=delete_preview,
        )
    finally:
        catalog.cancel(reserved)


def _expire(
    store: ObjectStore,
    catalog: Catalog,
    project: ProjectRef,
    policy: RetentionPolicy,
    *,
    referenced_keys: Callable[[VersionInfo], Iterable[str]],
    lease: Reservation | None,
    now: datetime | None,
    grace: timedelta,
    delete_preview: DeletePreview | None,
) -> ExpiryReport:
    listed = catalog.list(project)
    damaged = [f"version {bad.number}: {bad.problem}" for bad in listed.damaged]
    plan = _plan(listed, project, policy, catalog.now() if now is None else now)
    folders = tuple(f"{project.prefix}/{folder}/" for folder in DATA_FOLDERS)
    unreadable: set[int] = set()

    def references(version: VersionInfo) -> set[str]:
        try:
            found = set(referenced_keys(version))
        except DAMAGE as exc:
            damaged.append(f"version {version.number}: {exc.message}")
            unreadable.add(version.number)
            found = set()
        return {*found, version.manifest_key}

    live_keys = set().union(*(references(v) for v in plan.kept))
    going_keys = set().union(*(references(v) for v in plan.expired))
    expired = tuple(v for v in plan.expired if v.number not in unreadable)
    live: list[ObjectInfo] = []
    freed: list[ObjectInfo] = []
    old: list[ObjectInfo] = []
    fresh: list[ObjectInfo] = []
    for folder in folders:
        for info in store.list(folder):
            if info.key in live_keys:
                live.append(info)
            elif info.key in going_keys:
                freed.append(info)
            elif info.modified is not None and plan.now - as_utc(info.modified) >= grace:
                old.append(info)
            else:
                fresh.append(info)
    held: list[ObjectInfo] = []
    if damaged:  # what a damaged version references is unknown: no object is provably unused
        held, freed, old = [*freed, *old], [], []

    previews = {
        version.number: link
        for version in expired
        if (link := catalog.preview(project, version.number)) is not None
    }
    if lease is not None and previews and delete_preview is None:
        raise ConfigurationError(
            f"{_versions(sorted(previews))} of {project} {'has' if len(previews) == 1 else 'have'}"
            " a preview on the platform; expiring needs the platform's token to delete "
            f"{'it' if len(previews) == 1 else 'them'} (nothing was deleted)"
        )
    if lease is not None:
        for version in expired:
            lease = _keep_alive(catalog, lease)
            link = previews.get(version.number)
            if link is not None and delete_preview is not None:
                delete_preview(link)
            catalog.delete_version(project, version.number)
        for info in (*freed, *old):
            lease = _keep_alive(catalog, lease)
            store.delete(info.key)
    return ExpiryReport(
        project=project,
        dry_run=lease is None,
        plan=plan,
        grace=grace,
        versions_deleted=tuple(v.number for v in expired),
        freed=ObjectSet.of(freed),
        orphans=ObjectSet.of(old),
        fresh_orphans=ObjectSet.of(fresh),
        live=ObjectSet.of(live),
        damaged=tuple(damaged),
        held=ObjectSet.of(held),
        previews=previews,
    )


def _versions(numbers: list[int]) -> str:
    if len(numbers) == 1:
        return f"version {numbers[0]}"
    return "versions " + ", ".join(str(n) for n in numbers)


def _keep_alive(catalog: Catalog, lease: Reservation) -> Reservation:
    """Renew the lease once a third of it is used up (raises ``LeaseLost`` if it was lost)."""
    left = (lease.expires_at - catalog.now()).total_seconds()
    if left < catalog.lease_seconds * 2 / 3:
        return catalog.renew(lease)
    return lease
