"""The tables of a version and their Arrow schemas.

Every platform maps its project into the same tables, so diff, query and cross-platform tools
see one shape. Each table has three columns in common:

- ``key``: the stable source key of the row (built from platform ids, never row positions).
  Within a table, rows arrive — and are stored — in strictly increasing ``key`` order; the
  writer refuses anything else. That order is what makes content-defined chunks stable and lets
  two versions be diffed by a streaming merge join.
- ``fingerprint``: hex sha256 of the row's content *without* platform-assigned ids and
  timestamps that a restore rewrites (see :func:`fingerprint`); chunks store its 32 bytes
  (see :mod:`.layout`). Two captures of the same content on different projects have equal
  multisets of fingerprints; the manifest's content hash is built from them.
- ``raw``: the platform's original JSON record, so a restore is lossless even for fields the
  normalized columns do not model (stored without the text of a column it repeats, such as
  an annotation's geometry, and whole again when read: see :mod:`.layout`).

The other columns are normalized values that diff, query and restore need. JSON-valued columns
hold canonical JSON text (sorted keys, no whitespace, floats in shortest round-trip form, so
sub-pixel coordinates survive exactly).
"""

from __future__ import annotations

import hashlib
from enum import StrEnum
from typing import Any, Final

import pyarrow as pa

from labelvault import jsonfast

__all__ = [
    "FORMAT_VERSION",
    "OPTIONAL_TABLES",
    "SCHEMAS",
    "TABLES",
    "AnnotationKind",
    "GeometryType",
    "OwnerType",
    "canonical_json",
    "fingerprint",
    "schema_for",
]

#: Version of the format. Bump on any change and keep a reader for older ones.
#: 2: a table may be a base plus a delta (see :mod:`labelvault.snapshot.delta`).
#: 3: chunks store fingerprints as 32 bytes and ``raw`` without the text of a column that
#: repeats it (see :mod:`labelvault.snapshot.layout`); what readers see is unchanged.
#: 4: a delta records how many base rows it removes without replacing them.
FORMAT_VERSION: Final = 4

_TS = pa.timestamp("us", tz="UTC")


class _OpenEnum(StrEnum):
    """A string enum that maps values it does not know to ``UNKNOWN`` instead of failing.

    The raw value stays in the row's ``raw`` column, so nothing is lost.
    """

    @classmethod
    def _missing_(cls, value: object) -> _OpenEnum:
        return cls("unknown")


class GeometryType(_OpenEnum):
    """Shape of an annotation; Supervisely's names, Label Studio's result types mapped in."""

    UNKNOWN = "unknown"
    RECTANGLE = "rectangle"
    POLYGON = "polygon"
    POLYLINE = "line"
    POINT = "point"
    BITMAP = "bitmap"
    ALPHA_MASK = "alpha_mask"
    GRAPH = "graph"
    CUBOID = "cuboid"
    CUBOID_2D = "cuboid_2d"  # a video figure
    CUBOID_3D = "cuboid_3d"
    POINT_CLOUD = "point_cloud"
    MULTICLASS = "any"
    ORIENTED_BBOX = "oriented_bbox"
    MASK_3D = "mask_3d"
    CLOSED_SURFACE_MESH = "closed_surface_mesh"  # a volume's STL mesh
    CHOICES = "choices"
    TEXT = "textarea"
    LABELS = "labels"
    RATING = "rating"
    KEYPOINT = "keypointlabels"
    BRUSH = "brushlabels"
    RELATION = "relation"


class AnnotationKind(_OpenEnum):
    """Where an annotation row comes from."""

    UNKNOWN = "unknown"
    FIGURE = "figure"  # Supervisely figure
    ANNOTATION = "annotation"  # Label Studio annotation (submitted)
    PREDICTION = "prediction"
    DRAFT = "draft"


class OwnerType(_OpenEnum):
    """What a tag assignment is attached to."""

    UNKNOWN = "unknown"
    PROJECT = "project"
    DATASET = "dataset"
    ITEM = "item"
    ANNOTATION = "annotation"
    OBJECT = "object"  # a video's annotation object (its figures live in ``figures``)


def _table(*fields: pa.Field) -> pa.Schema:
    common_head = [
        pa.field("key", pa.string(), nullable=False),
        pa.field("fingerprint", pa.string(), nullable=False),
    ]
    common_tail = [pa.field("raw", pa.string(), nullable=False)]
    return pa.schema([*common_head, *fields, *common_tail])


SCHEMAS: Final[dict[str, pa.Schema]] = {
    # One row: the project itself, its class/tag definitions or label config, settings, readme.
    "project": _table(
        pa.field("name", pa.string()),
        pa.field("description", pa.string()),
        pa.field("kind", pa.string()),  # images / videos / volumes / labelstudio …
        pa.field("definitions", pa.string()),  # JSON: classes + tag metas, or label config
        pa.field("settings", pa.string()),  # JSON
        pa.field("custom_data", pa.string()),  # JSON
        pa.field("readme", pa.string()),
        pa.field("created_at", _TS),
        pa.field("updated_at", _TS),
    ),
    # Datasets form a tree through parent_key; path is the "/"-joined names from the root.
    "datasets": _table(
        pa.field("parent_key", pa.string()),
        pa.field("name", pa.string()),
        pa.field("path", pa.string()),
        pa.field("description", pa.string()),
        pa.field("custom_data", pa.string()),  # JSON
        pa.field("created_at", _TS),
        pa.field("updated_at", _TS),
    ),
    # Images, videos, volumes, Label Studio tasks. Never pixels: a hash or a link.
    "items": _table(
        pa.field("dataset_key", pa.string()),
        pa.field("name", pa.string()),
        pa.field("kind", pa.string()),
        pa.field("hash", pa.string()),
        pa.field("link", pa.string()),
        pa.field("size_bytes", pa.int64()),
        pa.field("width", pa.int32()),
        pa.field("height", pa.int32()),
        pa.field("meta", pa.string()),  # JSON
        pa.field("created_at", _TS),
        pa.field("updated_at", _TS),
    ),
    # Figures / annotations / predictions / drafts, each attached to an item.
    "annotations": _table(
        pa.field("item_key", pa.string(), nullable=False),
        pa.field("kind", pa.string()),  # AnnotationKind
        pa.field("class_name", pa.string()),
        pa.field("geometry_type", pa.string()),  # GeometryType
        pa.field("geometry", pa.string()),  # JSON, exact floats
        pa.field("author", pa.string()),
        pa.field("created_at", _TS),
        pa.field("updated_at", _TS),
    ),
    # One row per tag assignment, duplicates kept.
    "tags": _table(
        pa.field("owner_type", pa.string(), nullable=False),  # OwnerType
        pa.field("owner_key", pa.string(), nullable=False),
        pa.field("name", pa.string()),
        pa.field("value", pa.string()),  # JSON (number, string, null …)
        pa.field("author", pa.string()),
        pa.field("created_at", _TS),
        pa.field("updated_at", _TS),
    ),
    # People referenced by annotations (so authorship survives a restore).
    "users": _table(
        pa.field("login", pa.string()),
        pa.field("email", pa.string()),
        pa.field("name", pa.string()),
    ),
    # --- video projects (OPTIONAL_TABLES: absent from versions that have no such rows) -----
    # One row per video item (key = the item's key): what only videos have.
    "videos": _table(
        pa.field("item_key", pa.string(), nullable=False),
        pa.field("frames_count", pa.int32()),
        pa.field("fps", pa.float64()),  # frames per second, from the file's duration
        pa.field("duration", pa.float64()),  # seconds
        pa.field("custom_data", pa.string()),  # JSON
    ),
    # Annotation objects of a video: a class instance that figures on many frames belong to.
    "objects": _table(
        pa.field("item_key", pa.string(), nullable=False),
        pa.field("class_name", pa.string()),
        pa.field("author", pa.string()),
        pa.field("created_at", _TS),
        pa.field("updated_at", _TS),
    ),
    # One figure of an object on one frame, with exact geometry.
    "figures": _table(
        pa.field("item_key", pa.string(), nullable=False),
        pa.field("object_key", pa.string(), nullable=False),
        pa.field("frame_index", pa.int32()),
        pa.field("class_name", pa.string()),
        pa.field("geometry_type", pa.string()),  # GeometryType
        pa.field("geometry", pa.string()),  # JSON, exact floats
        pa.field("author", pa.string()),
        pa.field("created_at", _TS),
        pa.field("updated_at", _TS),
    ),
    # Tags of videos and of their objects, over a range of frames (null: the whole video).
    "video_tags": _table(
        pa.field("owner_type", pa.string(), nullable=False),  # OwnerType: item / object
        pa.field("owner_key", pa.string(), nullable=False),
        pa.field("name", pa.string()),
        pa.field("value", pa.string()),  # JSON
        pa.field("frame_from", pa.int32()),
        pa.field("frame_to", pa.int32()),
        pa.field("author", pa.string()),
        pa.field("created_at", _TS),
        pa.field("updated_at", _TS),
    ),
}

#: Tables added without a format bump: a manifest leaves them out when they have no rows (so
#: versions of other projects keep their bytes and content hash) and readers take a table a
#: manifest lacks as empty, which is what every older version holds.
OPTIONAL_TABLES: Final[frozenset[str]] = frozenset({"videos", "objects", "figures", "video_tags"})

#: Table names in the order a capture writes and a restore reads them.
TABLES: Final[tuple[str, ...]] = tuple(SCHEMAS)


def schema_for(table: str) -> pa.Schema:
    """The schema of ``table``; raises ``KeyError`` naming the valid tables."""
    try:
        return SCHEMAS[table]
    except KeyError:
        raise KeyError(f"unknown table {table!r}; tables are {', '.join(TABLES)}") from None


def canonical_json(value: Any) -> str:
    """JSON text that is the same for equal values: sorted keys, no whitespace, exact floats
    (:func:`json.dumps` with those settings, byte for byte; see :func:`.jsonfast.canonical`)."""
    return jsonfast.canonical(value)


def fingerprint(value: Any) -> str:
    """Hex sha256 of :func:`canonical_json` of ``value``.

    Platforms pass the row's content with platform-assigned ids replaced by natural references
    (dataset path, item name …) and without timestamps a restore rewrites.
    """
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()
