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

Capture pages ``/api/tasks?fields=all`` (``capture_mode="list"``, the default): it leaves
nothing on the server. ``capture_mode="export"`` reads Label Studio's snapshot exports with
drafts expanded instead (about three times faster, and it sees a task's ``allow_skip``), in task
id ranges each selected by a temporary Data Manager view, with prediction bodies from one
streamed ``/api/predictions`` listing; but Label Studio 1.23 keeps each export's file on its
disk after the export is deleted. Temporary views and exports are titled with their owner
(host, process id, start time); the next export capture removes those a killed capture left.
Both modes give the same rows. Raw JSON leaves out what the server derives from the clock
(``created_ago``), so an unchanged project captures to the same bytes.

Restore creates the users that are missing, then the project with its label config and
settings (set again after creation: Label Studio resets some of them in the create request),
then imports tasks in bulk with their annotations and predictions embedded (``ground_truth``
always explicit), one import at a time, serializing the next batch while the server imports.
Each import's new task ids (``return_task_ids``) are journaled with the source keys; after an
answer that was lost (5xx, timeout, broken connection) the project's tasks beyond the last
journaled id are matched to the batch by order and content, and only what did not land is sent
again. Drafts, which an import drops, are created per task, resume-safe by ``import_id``.
Nothing of labelvault's stays in the restored project.

What a restore cannot bring back: ids and every ``created_at``/``updated_at`` (the server
sets them), a draft's author (the server makes the caller the author; the result counts
``drafts_reassigned``), a task's ``allow_skip`` when captured in list mode, links to cloud
storage and file uploads, comments, and ``task_data_password`` (never captured).

Fingerprints leave out every id and server-set timestamp and refer to other rows by content:
an annotation names its task by the task's fingerprint, a draft its annotation by the
annotation's fingerprint, and every author by email; the project's fingerprint leaves out its
title and description. So capture → restore → capture gives the same fingerprints, on the same
server or another one.
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
