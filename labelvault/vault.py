"""The operations a user runs on a store, in one place: the CLI and the Prefect tasks call these.

A :class:`Vault` is an object store plus its versions catalog. It resolves version references
(number, id, or "latest"), loads their manifests, and runs capture, diff, query and retention.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime

import pyarrow as pa

from labelvault.capture import CaptureProgress, CaptureResult, capture_until_current
from labelvault.catalog import BrokenLease, Catalog, VersionInfo
from labelvault.diff import DiffResult, diff
from labelvault.errors import ConfigurationError, VersionNotFound
from labelvault.models import ProjectRef
from labelvault.platforms.base import Platform
from labelvault.query import DEFAULT_BATCH_ROWS, query, query_reader
from labelvault.restore import (
    RestoreOptions,
    RestoreReport,
    RestoreTarget,
    SelfRestoringPlatform,
    journal_prefix,
    restore_by_platform,
    restore_version,
)
from labelvault.retention import ExpiryReport, RetentionPolicy, expire
from labelvault.snapshot import Manifest, SnapshotReader
from labelvault.storage import ObjectStore
from labelvault.storage.keys import unsafe_segment
from labelvault.verify import VerifyReport, verify_project

__all__ = ["Vault", "VersionRef"]

#: A version number, a version id, or ``None`` for the latest version.
VersionRef = int | str | None


class Vault:
    """An object store and the versions catalog on it."""

    def __init__(self, store: ObjectStore, *, catalog: Catalog | None = None) -> None:
        self.store = store
        self.catalog = catalog or Catalog(store)

    def __enter__(self) -> Vault:
        return self

    def __exit__(self, *exc: object) -> None:
        self.store.close()

    # --- versions -------------------------------------------------------------------------

    def version(self, project: ProjectRef, ref: VersionRef = None) -> VersionInfo:
        """Resolve ``ref`` (number, id, or ``None`` = latest) to a committed version."""
        if ref is None:
            latest = self.catalog.latest(project)
            if latest is None:
                raise VersionNotFound(
                    f"{project} has no versions yet; capture one first", project=str(project)
                )
            return latest
        return self.catalog.get(project, _number_or_id(ref))

    def manifest(self, version: VersionInfo) -> Manifest:
        """The manifest of a committed version, verified on its own and against its record."""
        return self.catalog.manifest(version)

    def reader(self, project: ProjectRef, ref: VersionRef = None) -> SnapshotReader:
        """A streaming, verifying reader on one version's tables."""
        return SnapshotReader(self.store, self.manifest(self.version(project, ref)))

    def table_reader(
        self, project: ProjectRef, ref: VersionRef = None
    ) -> Callable[[str], Iterator[pa.RecordBatch]]:
        """``table name → record batches in key order``: what restore consumes."""
        reader = self.reader(project, ref)
        return reader.iter_batches

    def projects(self, platform: str, instance: str) -> list[ProjectRef]:
        """Projects of one platform server that have a version in this store."""
        probe = ProjectRef(platform=platform, instance=instance, project_id="_")
        base = probe.prefix.rsplit("/", 1)[0] + "/"
        found: set[str] = set()
        for info in self.store.list(base):
            project_segment, _, rest = info.key[len(base) :].partition("/")
            if rest.startswith("versions/"):
                found.add(unsafe_segment(project_segment))
        return [
            ProjectRef(platform=platform, instance=instance, project_id=project_id)
            for project_id in sorted(found)
        ]

    # --- operations -----------------------------------------------------------------------

    def capture(
        self,
        platform: Platform,
        project_id: str,
        *,
        title: str = "",
        description: str = "",
        tags: Sequence[str] = (),
        progress: Callable[[CaptureProgress], None] | None = None,
    ) -> CaptureResult:
        """Capture a project into a new version (or return the latest when unchanged)."""
        return capture_until_current(
            platform,
            project_id,
            store=self.store,
            catalog=self.catalog,
            title=title,
            description=description,
            tags=tags,
            progress=progress,
        )

    def diff(
        self, project: ProjectRef, old: VersionRef, new: VersionRef = None
    ) -> tuple[VersionInfo, VersionInfo, DiffResult]:
        """What changed from version ``old`` to version ``new`` (default: the latest)."""
        old_version = self.version(project, old)
        new_version = self.version(project, new)
        result = diff(self.store, self.manifest(old_version), self.manifest(new_version))
        return old_version, new_version, result

    def previous(self, version: VersionInfo) -> VersionInfo | None:
        """The committed version just before ``version``, if any."""
        earlier = [v for v in self.catalog.list(version.project) if v.number < version.number]
        return earlier[-1] if earlier else None

    def query(self, project: ProjectRef, sql: str, ref: VersionRef = None) -> pa.Table:
        """Run SQL over one version's tables (``project``, ``datasets``, ``items`` …)."""
        return query(self.store, self.manifest(self.version(project, ref)), sql)

    def class_counts(self, project: ProjectRef, ref: VersionRef = None) -> dict[str, int]:
        """Annotations per class in one version, most frequent first."""
        table = self.query(
            project,
            "SELECT coalesce(class_name, '') AS class_name, count(*) AS n "
            "FROM annotations GROUP BY 1 ORDER BY 2 DESC, 1",
            ref,
        )
        return dict(
            zip(table.column("class_name").to_pylist(), table.column("n").to_pylist(), strict=True)
        )

    def expire(
        self,
        project: ProjectRef,
        policy: RetentionPolicy,
        *,
        dry_run: bool = True,
        now: datetime | None = None,
    ) -> ExpiryReport:
        """Apply a retention policy; a dry run (the default) deletes nothing."""
        return expire(
            self.store,
            self.catalog,
            project,
            policy,
            referenced_keys=lambda version: self.manifest(version).referenced_keys(),
            dry_run=dry_run,
            now=now or datetime.now(UTC),
        )

    def verify(
        self,
        project: ProjectRef,
        ref: VersionRef = None,
        *,
        deep: bool = False,
        progress: Callable[[int, int], None] | None = None,
    ) -> VerifyReport:
        """Check a project's versions (or one): records, manifests and, with ``deep``, every
        chunk's size and sha256. Reports each damaged object; repairs nothing."""
        version = None if ref is None else _number_or_id(ref)
        return verify_project(self.catalog, project, version, deep=deep, progress=progress)

    def unlock(self, project: ProjectRef, *, force: bool = False) -> BrokenLease | None:
        """Break the project's reservation lease on purpose (see :meth:`Catalog.unlock`);
        ``None`` when nobody held it."""
        return self.catalog.unlock(project, force=force)

    # --- additions for the command line ----------------------------------------------------

    def query_reader(
        self,
        project: ProjectRef,
        sql: str,
        ref: VersionRef = None,
        *,
        batch_rows: int = DEFAULT_BATCH_ROWS,
    ) -> pa.RecordBatchReader:
        """Run SQL over one version's tables and stream the result batch by batch."""
        manifest = self.manifest(self.version(project, ref))
        return query_reader(self.store, manifest, sql, batch_rows=batch_rows)

    def restore(
        self,
        target: RestoreTarget | SelfRestoringPlatform,
        project: ProjectRef,
        ref: VersionRef,
        *,
        restore_id: str,
        name: str | None = None,
        description: str | None = None,
        workspace_id: str | None = None,
        skip_missed_entities: bool = False,
        allow_failures: bool = False,
        datasets: Sequence[str] = (),
        classes: Sequence[str] = (),
        batch_size: int = 200,
        progress: Callable[[dict[str, int]], None] | None = None,
    ) -> tuple[VersionInfo, RestoreReport]:
        """Restore a version as a new project on ``target`` (see :mod:`labelvault.restore`).

        ``restore_id`` names the restore's journal: running again with the same id resumes an
        interrupted restore. ``datasets`` (names or paths, each with its subtree) and
        ``classes`` restore only part of the version; empty means all.
        """
        version = self.version(project, ref)
        reader = SnapshotReader(self.store, self.manifest(version))
        journal = journal_prefix(project.prefix, restore_id)
        if isinstance(target, SelfRestoringPlatform):
            unsupported = {
                "workspace": workspace_id,
                "skip missed entities": skip_missed_entities,
                "allow failures": allow_failures,
                "datasets": datasets,
                "classes": classes,
            }
            given = [option for option, value in unsupported.items() if value]
            if given:
                raise ConfigurationError(
                    f"a {getattr(target, 'name', 'platform')} restore takes no "
                    f"{', '.join(given)}: it restores the whole version as one new project"
                )
            report = restore_by_platform(
                target,
                reader.iter_batches,
                store=self.store,
                journal=journal,
                name=name,
                description=description,
            )
            return version, report
        report = restore_version(
            target,
            reader.iter_batches,
            store=self.store,
            journal=journal,
            options=RestoreOptions(
                version_number=version.number,
                version_id=version.id,
                source_project_id=project.project_id,
                workspace_id=workspace_id,
                project_name=name,
                project_description=description,
                skip_missed_entities=skip_missed_entities,
                allow_failures=allow_failures,
                batch_size=batch_size,
                datasets=tuple(datasets) or None,
                classes=tuple(classes) or None,
            ),
            progress=progress,
        )
        return version, report


def _number_or_id(ref: int | str) -> int | str:
    if isinstance(ref, int):
        return ref
    return int(ref) if ref.isdigit() else ref
