"""Label Studio (Community 1.x): capture a project, restore it as a new project, webhooks.

Plain REST over :mod:`labelvault.http`; no SDK. What maps where:

========================  ================================================================
table                     rows
========================  ================================================================
``project``               one row: title, description, label config (``definitions``),
                          the project settings a restore can set (``settings``)
``datasets``              none: Label Studio has no datasets
``items``                 one per task (``data``, ``meta``); key = zero-padded task id
``annotations``           annotations, predictions and drafts of each task (``kind``);
                          key = ``<task>/a<id>``, ``<task>/d<id>``, ``<task>/p<id>``
``tags``                  none
``users``                 the users that annotations and drafts name (``completed_by``)
========================  ================================================================

Capture reads the project through Label Studio's snapshot exports with drafts expanded (about
three times faster than paging the task list with ``fields=all``). A large project is exported
in task id ranges, each selected by a temporary Data Manager view: no request runs long enough
to time out, the client converts one range while the server builds the next, and a server with
several workers builds ranges side by side. Prediction bodies come from one streamed
``/api/predictions`` listing, spooled to a local SQLite file (expanding them in the export
costs the server a query and a serializer per task); authors come from the users listing.
``capture_mode="list"`` pages ``/api/tasks?fields=all`` instead. Both give the same rows (list
mode does not see a task's ``allow_skip``).

Restore creates the users that are missing, then the project with its label config, then
imports tasks in bulk with their annotations and predictions embedded (``ground_truth``
always explicit), one import at a time, serializing the next batch while the server imports.
Drafts, which an import drops, are created per task. Each restored task carries its source
key in ``meta["_labelvault"]`` (left out of fingerprints and of the ``meta`` column), so a
restore that is retried with ``resume_project_id`` skips what is already there.

What a restore cannot bring back: ids and every ``created_at``/``updated_at`` (the server
sets them), a draft's author (the server makes the caller the author; the result counts
``drafts_reassigned``), links to cloud storage and file uploads, comments, and
``task_data_password`` (never captured).

Fingerprints leave out every id and server-set timestamp and refer to other rows by content:
an annotation names its task by the task's fingerprint, a draft its annotation by the
annotation's fingerprint, and every author by email. So capture → restore → capture gives the
same fingerprints, on the same server or another one.
"""

from __future__ import annotations

from labelvault.platforms.labelstudio.auth import is_personal_access_token
from labelvault.platforms.labelstudio.jsonstream import iter_json_array
from labelvault.platforms.labelstudio.platform import LabelStudioPlatform
from labelvault.platforms.labelstudio.rows import task_rows
from labelvault.platforms.labelstudio.settings import LabelStudioOptions
from labelvault.platforms.labelstudio.webhooks import (
    DEFAULT_WEBHOOK_ACTIONS,
    Webhook,
    register_webhook,
)

__all__ = [
    "DEFAULT_WEBHOOK_ACTIONS",
    "LabelStudioOptions",
    "LabelStudioPlatform",
    "Webhook",
    "is_personal_access_token",
    "iter_json_array",
    "register_webhook",
    "task_rows",
]
