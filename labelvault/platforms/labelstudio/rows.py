"""Label Studio's rows and keys: how tasks, annotations, predictions, drafts and users become
labelvault's tables."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

import pyarrow as pa

from labelvault.errors import PaginationError
from labelvault.snapshot.schema import (
    AnnotationKind,
    GeometryType,
    canonical_json,
    fingerprint,
    schema_for,
)

logger = logging.getLogger("labelvault.platforms.labelstudio")

PLATFORM: Final = "labelstudio"

#: Fields the server derives from the clock at each request (``created_ago``: "3 minutes"):
#: left out of the raw JSON kept, so an unchanged project captures to the same bytes.
DERIVED_FIELDS: Final = frozenset({"created_ago"})

#: Project fields a restore sets on the new project (``model_version`` is set last, once the
#: predictions that name it exist). Credentials (``task_data_password``) are never captured.
SETTINGS_FIELDS: Final[tuple[str, ...]] = (
    "expert_instruction",
    "show_instruction",
    "show_skip_button",
    "enable_empty_annotation",
    "show_annotation_history",
    "color",
    "maximum_annotations",
    "is_published",
    "model_version",
    "is_draft",
    "min_annotations_to_start_training",
    "start_training_on_annotation_update",
    "show_collab_predictions",
    "sampling",
    "show_ground_truth_first",
    "annotator_evaluation_enabled",
    "show_overlap_first",
    "overlap_cohort_percentage",
    "control_weights",
    "evaluate_predictions_automatically",
    "skip_queue",
    "reveal_preannotations_interactively",
    "task_data_login",
)
SECRET_PROJECT_FIELDS: Final = ("task_data_password",)

_KIND_LETTER: Final = {
    AnnotationKind.ANNOTATION: "a",
    AnnotationKind.DRAFT: "d",
    AnnotationKind.PREDICTION: "p",
}

_GEOMETRY: Final[dict[str, GeometryType]] = {
    "rectangle": GeometryType.RECTANGLE,
    "rectanglelabels": GeometryType.RECTANGLE,
    "polygon": GeometryType.POLYGON,
    "polygonlabels": GeometryType.POLYGON,
    "keypoint": GeometryType.KEYPOINT,
    "keypointlabels": GeometryType.KEYPOINT,
    "brush": GeometryType.BRUSH,
    "brushlabels": GeometryType.BRUSH,
    "choices": GeometryType.CHOICES,
    "taxonomy": GeometryType.CHOICES,
    "textarea": GeometryType.TEXT,
    "labels": GeometryType.LABELS,
    "hypertextlabels": GeometryType.LABELS,
    "paragraphlabels": GeometryType.LABELS,
    "timeserieslabels": GeometryType.LABELS,
    "rating": GeometryType.RATING,
    "relation": GeometryType.RELATION,
}

#: Result types whose values are free input, not class names.
_NOT_CLASSES: Final = frozenset({"textarea", "rating", "number", "datetime", "relation"})

_KEY_DIGITS: Final = 12


def key_of(number: int) -> str:
    return f"{number:0{_KEY_DIGITS}d}"


def timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def kept(raw: dict[str, Any]) -> dict[str, Any]:
    """``raw`` without :data:`DERIVED_FIELDS`."""
    if DERIVED_FIELDS.isdisjoint(raw):
        return raw
    return {k: v for k, v in raw.items() if k not in DERIVED_FIELDS}


def link_of(data: Any) -> str | None:
    if not isinstance(data, dict):
        return None
    for name in sorted(data):
        value = data[name]
        if isinstance(value, str) and re.match(r"^(https?|s3|gs|azure-blob)://", value):
            return value
    return None


def _result_types(result: Any) -> list[str]:
    if not isinstance(result, list):
        return []
    return [r["type"] for r in result if isinstance(r, dict) and isinstance(r.get("type"), str)]


def _class_name(result: Any) -> str | None:
    """Distinct label and choice values of a result, sorted, joined with ``|``."""
    names: set[str] = set()
    if not isinstance(result, list):
        return None
    for region in result:
        if not isinstance(region, dict):
            continue
        kind = region.get("type")
        value = region.get("value")
        if not isinstance(kind, str) or kind in _NOT_CLASSES or not isinstance(value, dict):
            continue
        labels = value.get(kind)
        if not isinstance(labels, list):
            continue
        for label in labels:
            if isinstance(label, str):
                names.add(label)
            elif isinstance(label, list) and all(isinstance(x, str) for x in label):
                names.add("/".join(label))
    return "|".join(sorted(names)) if names else None


_GEOMETRY_VALUES: Final[dict[str, str]] = {name: kind.value for name, kind in _GEOMETRY.items()}


def _geometry_type(result: Any) -> str | None:
    types = set(_result_types(result))
    if len(types) > 1:
        types.discard("relation")
    if not types:
        return None
    mapped = {_GEOMETRY_VALUES.get(t) or GeometryType(t).value for t in types}
    if len(mapped) > 1:
        return GeometryType.MULTICLASS.value
    return mapped.pop()


def _user_id(value: Any) -> int | None:
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass
class User:
    id: int
    email: str | None
    username: str | None = None
    first_name: str = ""
    last_name: str = ""
    raw: dict[str, Any] = field(default_factory=dict)


def _normal_login(username: str | None, email: str | None) -> str:
    """Label Studio cannot create a user with a blank username; a restore uses the email."""
    if not username or username == email:
        return ""
    return username


class Users:
    """The server's users by id and email, and the ones a capture referenced."""

    def __init__(
        self,
        listing: Iterable[dict[str, Any]],
        fetch: Callable[[int], dict[str, Any] | None] | None = None,
    ) -> None:
        self.by_id: dict[int, User] = {}
        self.by_email: dict[str, User] = {}
        self.referenced: set[int] = set()
        self.unknown_emails: set[str] = set()
        self._fetch = fetch
        for raw in listing:
            self.add(raw)

    def add(self, raw: dict[str, Any]) -> User:
        user = User(
            id=int(raw["id"]),
            email=raw.get("email"),
            username=raw.get("username"),
            first_name=raw.get("first_name") or "",
            last_name=raw.get("last_name") or "",
            raw=raw,
        )
        self.by_id[user.id] = user
        if user.email:
            self.by_email[user.email] = user
        return user

    def email_of(self, value: Any) -> str | None:
        """The email of ``completed_by`` (an id or an expanded user); notes the reference."""
        user_id = _user_id(value)
        if user_id is None:
            return None
        self.referenced.add(user_id)
        if user_id not in self.by_id:
            if isinstance(value, dict) and value.get("email"):
                self.add(dict(value))
            else:
                # Not in the organization's listing (a removed member): ask once.
                found = self._fetch(user_id) if self._fetch else None
                if found is not None:
                    self.add(found)
                else:
                    self.by_id[user_id] = User(id=user_id, email=None)
        return self.by_id[user_id].email

    def note_email(self, email: Any) -> str | None:
        """A draft names its author by email."""
        if not isinstance(email, str) or not email:
            return None
        user = self.by_email.get(email)
        if user is not None:
            self.referenced.add(user.id)
        else:
            self.unknown_emails.add(email)
        return email


def _annotation_content(raw: dict[str, Any], item_fp: str, author: str | None) -> dict[str, Any]:
    return {
        "item": item_fp,
        "kind": AnnotationKind.ANNOTATION.value,
        "result": raw.get("result"),
        "was_cancelled": bool(raw.get("was_cancelled", False)),
        "ground_truth": bool(raw.get("ground_truth", False)),
        "lead_time": raw.get("lead_time"),
        "author": author,
    }


def _prediction_content(raw: dict[str, Any], item_fp: str) -> dict[str, Any]:
    return {
        "item": item_fp,
        "kind": AnnotationKind.PREDICTION.value,
        "result": raw.get("result"),
        "score": raw.get("score"),
        "model_version": raw.get("model_version"),
    }


def _draft_content(
    raw: dict[str, Any], item_fp: str, author: str | None, parent_fp: str | None
) -> dict[str, Any]:
    return {
        "item": item_fp,
        "kind": AnnotationKind.DRAFT.value,
        "result": raw.get("result"),
        "lead_time": raw.get("lead_time"),
        "was_postponed": bool(raw.get("was_postponed", False)),
        "author": author,
        "annotation": parent_fp,
    }


_NONCE: Final = secrets.token_hex(8)


def _mark(n: int) -> tuple[str, str]:
    mark = f"\x00{_NONCE}{n}\x00"
    return mark, json.dumps(mark)


#: Placeholders of :func:`splice` (a string no JSON text holds) and their JSON text.
_MARKS: Final = tuple(_mark(n) for n in range(4))


def splice(value: dict[str, Any], encoded: Mapping[str, str]) -> str:
    """``canonical_json(value)``, taking the values under ``encoded``'s keys as ready
    canonical JSON text (so a large value is encoded once, not once per use)."""
    if not encoded:
        return canonical_json(value)
    count = len(encoded)
    marks = _MARKS[:count] if count <= len(_MARKS) else tuple(map(_mark, range(count)))
    patched = dict(value)
    for key, (mark, _) in zip(encoded, marks, strict=True):
        patched[key] = mark
    text = canonical_json(patched)
    for ready, (_, mark_text) in zip(encoded.values(), marks, strict=True):
        text = text.replace(mark_text, ready, 1)
    return text


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _annotation_row(
    kind: AnnotationKind,
    raw: dict[str, Any],
    task_key: str,
    content: dict[str, Any],
    author: str | None,
) -> dict[str, Any]:
    raw = kept(raw)
    result = raw.get("result")
    geometry = canonical_json(result)
    return {
        "key": f"{task_key}/{_KIND_LETTER[kind]}{key_of(int(raw['id']))}",
        "fingerprint": sha256_text(splice(content, {"result": geometry})),
        "item_key": task_key,
        "kind": kind.value,
        "class_name": _class_name(result),
        "geometry_type": _geometry_type(result),
        "geometry": geometry,
        "author": author,
        "created_at": timestamp(raw.get("created_at")),
        "updated_at": timestamp(raw.get("updated_at")),
        "raw": splice(raw, {"result": geometry} if "result" in raw else {}),
    }


def task_rows(task: dict[str, Any], users: Users) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One task as an ``items`` row and its ``annotations`` rows (in key order)."""
    item, rows = task_head(task, users)
    rows.extend(prediction_rows(task.get("predictions"), item))
    return item, rows


def task_head(task: dict[str, Any], users: Users) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """:func:`task_rows` without the prediction rows (which sort last within a task)."""
    task_key = key_of(int(task["id"]))
    data = task.get("data")
    meta = task.get("meta")
    data_text = canonical_json(data)
    meta_text = canonical_json(meta)
    item_fp = sha256_text(f'{{"data":{data_text},"meta":{meta_text}}}')
    item_raw = {
        k: v
        for k, v in task.items()
        if k not in ("annotations", "predictions", "drafts") and k not in DERIVED_FIELDS
    }
    item = {
        "key": task_key,
        "fingerprint": item_fp,
        "dataset_key": None,
        "name": None,
        "kind": "task",
        "hash": None,
        "link": link_of(data),
        "size_bytes": None,
        "width": None,
        "height": None,
        "meta": meta_text,
        "created_at": timestamp(task.get("created_at")),
        "updated_at": timestamp(task.get("updated_at")),
        "raw": splice(item_raw, {"data": data_text})
        if "data" in item_raw
        else canonical_json(item_raw),
    }
    rows: list[dict[str, Any]] = []
    annotation_fps: dict[int, str] = {}
    for raw in sorted(dicts(task.get("annotations")), key=lambda a: int(a["id"])):
        author = users.email_of(raw.get("completed_by"))
        content = _annotation_content(raw, item_fp, author)
        row = _annotation_row(AnnotationKind.ANNOTATION, raw, task_key, content, author)
        annotation_fps[int(raw["id"])] = row["fingerprint"]
        rows.append(row)
    for raw in sorted(dicts(task.get("drafts")), key=lambda d: int(d["id"])):
        author = users.note_email(raw.get("user"))
        parent = raw.get("annotation")
        parent_fp = annotation_fps.get(parent) if isinstance(parent, int) else None
        content = _draft_content(raw, item_fp, author, parent_fp)
        rows.append(_annotation_row(AnnotationKind.DRAFT, raw, task_key, content, author))
    return item, rows


def prediction_rows(predictions: Any, item: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``annotations`` rows of a task's predictions (``item`` is the task's row)."""
    task_key, item_fp = item["key"], item["fingerprint"]
    return [
        _annotation_row(
            AnnotationKind.PREDICTION, raw, task_key, _prediction_content(raw, item_fp), None
        )
        for raw in sorted(dicts(predictions), key=lambda p: int(p["id"]))
    ]


def dicts(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        return []
    return [v for v in value if isinstance(v, dict) and isinstance(v.get("id"), int)]


def project_row(project: dict[str, Any]) -> dict[str, Any]:
    """The ``project`` table's one row.

    The fingerprint leaves out the title and the description (they stay in their columns):
    a restore names its project anew, and a restored project is still the same content.
    """
    raw = dict(project)
    for name in SECRET_PROJECT_FIELDS:
        if raw.get(name):
            raw[name] = "***"
    settings = {name: project[name] for name in SETTINGS_FIELDS if name in project}
    definitions = {"label_config": project.get("label_config")}
    title = project.get("title")
    description = project.get("description")
    return {
        "key": key_of(int(project["id"])),
        "fingerprint": fingerprint(
            {
                "definitions": definitions,
                "settings": settings,
            }
        ),
        "name": title,
        "description": description,
        "kind": PLATFORM,
        "definitions": canonical_json(definitions),
        "settings": canonical_json(settings),
        "custom_data": None,
        "readme": None,
        "created_at": timestamp(project.get("created_at")),
        "updated_at": timestamp(project.get("updated_at")),
        "raw": canonical_json(raw),
    }


def user_row(user: User) -> dict[str, Any]:
    """One ``users`` row."""
    name = " ".join(part for part in (user.first_name, user.last_name) if part)
    return {
        "key": key_of(user.id),
        "fingerprint": fingerprint(
            {
                "email": user.email,
                "login": _normal_login(user.username, user.email),
                "first_name": user.first_name,
                "last_name": user.last_name,
            }
        ),
        "login": user.username,
        "email": user.email,
        "name": name or None,
        "raw": canonical_json(
            {k: user.raw.get(k) for k in ("id", "email", "username", "first_name", "last_name")}
        ),
    }


def record_batch(table: str, rows: list[dict[str, Any]]) -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist(rows, schema=schema_for(table))


def _rows(batches: Iterator[pa.RecordBatch]) -> Iterator[dict[str, Any]]:
    for batch in batches:
        yield from batch.to_pylist()


def ints(*values: Any) -> bool:
    return all(isinstance(v, int) and not isinstance(v, bool) for v in values)


def in_order(
    tasks: Iterable[dict[str, Any]], number: int, project_id: str
) -> Iterator[dict[str, Any]]:
    """``tasks``, checked to come in increasing id order."""
    last = -1
    for task in tasks:
        task_id = task.get("id")
        if not isinstance(task_id, int) or task_id <= last:
            raise PaginationError(
                f"{PLATFORM}: project {number} returned task {task_id!r} after {last}; "
                "tasks must come in increasing id order",
                platform=PLATFORM,
                project=project_id,
            )
        last = task_id
        yield task
