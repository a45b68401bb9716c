"""Editing the catalog: a version's title, description, tags and preview link, and deleting
a version. Records stay write-once; what changes lives in the version's metadata object,
rewritten by compare-and-swap."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from labelvault.catalog.reading import CAS_ATTEMPTS, CatalogReads, tag_tuple
from labelvault.catalog.records import (
    PREVIEW_SCHEMA_VERSION,
    PreviewLink,
    VersionMeta,
    dump_record,
    meta_key,
    version_key,
)
from labelvault.errors import (
    AlreadyExists,
    CatalogError,
    ObjectNotFound,
    PreconditionFailed,
)
from labelvault.models import ProjectRef, VersionInfo

__all__ = ["CatalogEdits"]


class CatalogEdits(CatalogReads):
    """What may change about a committed version, and its deletion."""

    def update(
        self,
        project: ProjectRef,
        ref: int | str,
        *,
        title: str | None = None,
        description: str | None = None,
        tags: Sequence[str] | None = None,
    ) -> VersionInfo:
        """Change a version's title, description or tags (``None`` keeps the current value).

        The write-once record is left as it is; the new values go to ``meta/<number>.json`` by
        compare-and-swap, so concurrent updates never lose each other's writes silently: each
        one re-reads and re-applies its own changes on top of the other's.

        Raises:
            VersionNotFound: no such version.
        """
        new_tags = None if tags is None else tag_tuple(tags)
        version = self.get(project, ref)
        if title is None and description is None and new_tags is None:
            return version

        def change(current: VersionInfo, found: VersionMeta | None) -> VersionMeta:
            return VersionMeta(
                schema_version=_meta_schema(found.preview if found else None),
                version_id=current.id,
                title=current.title if title is None else title,
                description=current.description if description is None else description,
                tags=current.tags if new_tags is None else new_tags,
                updated_at=self.now(),
                preview=found.preview if found else None,
            )

        return self._rewrite_meta(project, version, ref, change)[0]

    def preview(self, project: ProjectRef, ref: int | str) -> PreviewLink | None:
        """The preview project linked to a version, or ``None``.

        Raises:
            VersionNotFound: no such version.
        """
        version = self.get(project, ref)
        meta = self._read_meta(project, version.number)
        return meta.preview if meta is not None and meta.version_id == version.id else None

    def link_preview(
        self,
        project: ProjectRef,
        ref: int | str,
        link: PreviewLink | None,
        *,
        expected: PreviewLink | None,
    ) -> PreviewLink | None:
        """Link ``link`` as the version's preview (``None`` unlinks), but only while the
        current link is ``expected``: two previews made at once never silently replace each
        other. Stamped like :meth:`update`; title, description and tags are kept.

        Returns the link now stored: ``link`` on success, the other link when it differed
        from ``expected`` (and nothing was written).

        Raises:
            VersionNotFound: no such version.
        """
        version = self.get(project, ref)

        def change(current: VersionInfo, found: VersionMeta | None) -> VersionMeta | None:
            now_linked = found.preview if found is not None else None
            if now_linked != expected:
                return None
            return VersionMeta(
                schema_version=_meta_schema(link),
                version_id=current.id,
                title=current.title,
                description=current.description,
                tags=current.tags,
                updated_at=self.now(),
                preview=link,
            )

        _, stored = self._rewrite_meta(project, version, ref, change)
        return stored.preview if stored is not None else None

    def _rewrite_meta(
        self,
        project: ProjectRef,
        version: VersionInfo,
        ref: int | str,
        change: Callable[[VersionInfo, VersionMeta | None], VersionMeta | None],
    ) -> tuple[VersionInfo, VersionMeta | None]:
        """Replace ``meta/<number>.json`` with ``change(current, stored meta)`` by
        compare-and-swap, re-reading after every lost race; ``change`` returning ``None``
        leaves the stored metadata as it is."""
        key = meta_key(project, version.number)
        record = self._read_record(project, version.number)
        if record is None:
            raise self._not_found(project, ref, version.number)
        for _ in range(CAS_ATTEMPTS):
            found = self._read_meta_etag(project, version.number)
            meta = found[0] if found is not None and found[0].version_id == record.id else None
            current = record.info(meta)
            wanted = change(current, meta)
            if wanted is None:
                return current, meta
            try:
                if found is None:
                    self.store.put_if_absent(key, dump_record(wanted))
                else:
                    self.store.put_if_match(key, dump_record(wanted), found[1])
            except (AlreadyExists, PreconditionFailed, ObjectNotFound):
                continue
            return record.info(wanted), wanted
        raise CatalogError(
            f"version {version.number} of project {project} kept changing while being updated; "
            "try again",
            project=str(project),
            version=version.number,
        )

    def delete_version(self, project: ProjectRef, ref: int | str) -> VersionInfo:
        """Delete a version's record (the moment it stops existing), then its metadata.

        Its chunks and manifest stay; retention deletes those no other version references.
        The latest version cannot be deleted, so that version numbers are never reused.

        Raises:
            VersionNotFound: no such version.
            CatalogError: ``ref`` is the latest version.
        """
        version = self.get(project, ref)
        numbers = self._numbers(project)
        if numbers and version.number >= numbers[-1]:
            raise CatalogError(
                f"version {version.number} is the latest version of project {project} and "
                "cannot be deleted (its number would be reused by the next version)",
                project=str(project),
                version=version.number,
            )
        self.store.delete(version_key(project, version.number))
        self.store.delete(meta_key(project, version.number))
        return version


def _meta_schema(preview: PreviewLink | None) -> int:
    """Metadata that links a preview is written as a newer schema (see ``records``)."""
    return PREVIEW_SCHEMA_VERSION if preview is not None else 2
