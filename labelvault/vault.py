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
from labelvault.errors import IntegrityError, VersionNotFound
from labelvault.keys import unsafe_segment
from labelvault.models import ProjectRef, RestoreOptions, RestoreReport, VersionOrigin
from labelvault.platforms.base import Partition, Platform, RestoreProgress
from labelvault.query import DEFAULT_BATCH_ROWS, QueryLimits
from labelvault.restore import journal_prefix, restore_version
from labelvault.restore.engine import (
    RestoreStart,
    finish_restore,
    restore_partition,
    start_restore,
)
from labelvault.restore.journal import collect_abandoned
from labelvault.retention import DeletePreview, ExpiryReport, RetentionPolicy, expire
from labelvault.snapshot.manifest import Manifest
from labelvault.snapshot.reader import SnapshotReader
from labelvault.storage import ObjectStore
from labelvault.verify import VerifyReport, verify_project

__all__ = ["Vault", "VersionRef", "parse_version_ref"]

#: A version number, a version id, or ``None`` for the latest version.
VersionRef = int | str | None


def parse_version_ref(ref: VersionRef) -> VersionRef:
    """``None`` or ``"latest"`` → ``None``; digits → a number; anything else → a version id."""
    if ref is None or isinstance(ref, int):
        return ref
    text = ref.strip()
    if text.lower() == "latest":
        return None
    return int(text) if text.isdigit() else text


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
        """Resolve ``ref`` (number, id, or ``None`` / ``"latest"``) to a committed version."""
        ref = parse_version_ref(ref)
        if ref is None:
            latest = self.catalog.latest(project)
            if latest is None:
                raise VersionNotFound(
                    f"{project} has no versions yet; capture one first", project=str(project)
                )
            return latest
        return self.catalog.get(project, ref)

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
        parallel: int = 1,
    ) -> CaptureResult:
        """Capture a project into a new version (or return the latest when unchanged);
        ``parallel`` threads read the partitions of a platform that plans them."""
        return capture_until_current(
            platform,
            project_id,
            store=self.store,
            catalog=self.catalog,
            title=title,
            description=description,
            tags=tags,
            progress=progress,
            parallel=parallel,
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
        from labelvault.query import query  # noqa: PLC0415 - DuckDB is heavy; load on use

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
        delete_preview: DeletePreview | None = None,
    ) -> ExpiryReport:
        """Apply a retention policy; a dry run (the default) deletes nothing. Restore journals
        that nobody will resume are collected with the versions' orphans.

        ``delete_preview`` deletes an expired version's preview project on its platform (see
        :func:`labelvault.preview.delete_preview`); a real run needs it when one has a preview.
        """
        moment = now or datetime.now(UTC)
        report = expire(
            self.store,
            self.catalog,
            project,
            policy,
            referenced_keys=lambda version: self.manifest(version).referenced_keys(),
            dry_run=dry_run,
            now=moment,
            delete_preview=delete_preview,
        )
        # Restore journals nobody resumed go too (older than the grace period, like orphans).
        journals = collect_abandoned(
            self.store, project.prefix, report.grace, now=moment, apply=not dry_run
        )
        return report.model_copy(update={"journals": tuple(j.prefix for j in journals)})

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
        version = parse_version_ref(ref)
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
        limits: QueryLimits | None = None,
    ) -> pa.RecordBatchReader:
        """Run SQL over one version's tables and stream the result batch by batch, within
        ``limits`` (time, memory, threads; the defaults of :class:`QueryLimits` otherwise)."""
        from labelvault.query import query_reader  # noqa: PLC0415 - DuckDB is heavy

        manifest = self.manifest(self.version(project, ref))
        return query_reader(self.store, manifest, sql, batch_rows=batch_rows, limits=limits)

    def restore(
        self,
        target: Platform,
        project: ProjectRef,
        ref: VersionRef,
        *,
        restore_id: str,
        options: RestoreOptions | None = None,
        progress: RestoreProgress | None = None,
        parallel: int = 1,
    ) -> tuple[VersionInfo, RestoreReport]:
        """Restore a version as a new project on ``target`` (see :mod:`labelvault.restore`).

        ``restore_id`` names the restore's journal: running again with the same id resumes an
        interrupted restore. ``options`` say where and how (a partial restore names datasets
        or classes); the defaults restore the whole version beside its source. ``parallel``
        above 1 restores the items in partitions, that many at once (on platforms that can).

        The version is checked first (its record, manifest and every chunk's checksum): a
        damaged version is refused with its damaged objects named, before anything is created
        on the platform.
        """
        version = self.intact_version(project, ref)
        reader = SnapshotReader(self.store, self.manifest(version))
        report = restore_version(
            target,
            reader.iter_batches,
            store=self.store,
            journal=journal_prefix(project.prefix, restore_id),
            origin=_origin(project, version),
            options=options or RestoreOptions(),
            progress=progress,
            parallel=parallel,
            read_range=reader.iter_key_range,
        )
        return version, report

    def start_restore(
        self,
        target: Platform,
        project: ProjectRef,
        ref: VersionRef,
        *,
        restore_id: str,
        options: RestoreOptions | None = None,
        parallel: int = 1,
    ) -> tuple[VersionInfo, RestoreStart | RestoreReport]:
        """The first step of :meth:`restore` run as steps (a flow's tasks): check the version,
        plan the partitions, create the project and datasets. The stored report when this
        restore already finished."""
        version = self.intact_version(project, ref)
        reader = SnapshotReader(self.store, self.manifest(version))
        return version, start_restore(
            target,
            reader.iter_batches,
            store=self.store,
            journal=journal_prefix(project.prefix, restore_id),
            origin=_origin(project, version),
            options=options or RestoreOptions(),
            parallel=parallel,
            read_range=reader.iter_key_range,
        )

    def restore_partition(
        self,
        target: Platform,
        project: ProjectRef,
        number: int,
        *,
        start: RestoreStart,
        partition: Partition,
        progress: RestoreProgress | None = None,
    ) -> RestoreReport:
        """Restore one partition of :meth:`start_restore`'s plan of version ``number``."""
        reader = self.reader(project, number)
        return restore_partition(
            target,
            reader.iter_key_range,
            store=self.store,
            start=start,
            partition=partition,
            progress=progress,
        )

    def finish_restore(
        self, start: RestoreStart, reports: Sequence[RestoreReport]
    ) -> RestoreReport:
        """Join the partitions' reports (plan order) and close the restore's journal."""
        return finish_restore(self.store, start, reports)

    def intact_version(self, project: ProjectRef, ref: VersionRef) -> VersionInfo:
        """The version, once its record, manifest and every chunk's checksum are checked; a
        damaged one is refused with its damaged objects named."""
        version = self.version(project, ref)
        damage = [
            found
            for found in self.verify(project, version.number, deep=True).damage
            if found.kind != "lease"
        ]
        if damage:
            listed = "; ".join(f"{d.kind} {d.key}: {d.problem}" for d in damage[:5])
            more = f"; and {len(damage) - 5} more" if len(damage) > 5 else ""
            raise IntegrityError(
                f"version {version.number} of {project} is damaged ({listed}{more}); nothing "
                "was restored. Run labelvault verify --deep for the whole list, and restore "
                "another version",
                key=damage[0].key,
            )
        return version


def _origin(project: ProjectRef, version: VersionInfo) -> VersionOrigin:
    return VersionOrigin(
        source_project_id=project.project_id,
        version_number=version.number,
        version_id=version.id,
    )
