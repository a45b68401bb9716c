"""Supervisely: capture an images, videos or volumes project into labelvault's tables, and
restore one. What follows describes images; videos (:mod:`.video`) and volumes
(:mod:`.volume`) share the project, datasets and items tables and keep their objects, figures
and tags in tables of their own.

Every call is ``POST <server>/public/api/v3/<method>`` with the ``x-api-key`` header (see
``reference/supervisely-api.md``). Capture reads, per project: ``projects.info`` (info,
settings, custom data, readme), ``projects.meta`` (classes and tag metas), ``datasets.list``
(the nested tree, with custom data) and then, dataset by dataset and in batches of images:
``images.list`` (token mode), ``figures.list`` with ``integerCoords: false`` (exact sub-pixel
geometry) and ``figures.bulk.download.geometry`` for alpha masks. Pixels are never read: an
image is its hash or its link.

Keys make capture order the key order of every table:

==============  ==================================================  =========================
table           key                                                 example
==============  ==================================================  =========================
project         ``project``
datasets        dataset ids from the root, zero-padded, ``/``-joined  ``000000005001/000000005003``
items           ``<dataset key>#<image id>``                        ``…5003#000000007001``
annotations     ``<item key>#<figure id>``                          ``…7001#000000009001``
tags            ``<owner key>!<assignment id>``                     ``…7001!000000011001``
==============  ==================================================  =========================

A parent dataset's key is a prefix of its children's, so datasets come parents first; ``#``
and ``!`` sort before ``/``, so an item's annotations and tags come right after it and before
the next dataset. Fingerprints leave out ids, timestamps and authors (a restore rewrites them)
and refer to datasets by path, to items by dataset path and name; a tag refers to its figure
by item, class and place among the item's figures of that class, so editing a figure changes
the figure's fingerprint and not its tags'.

Restore (:mod:`.restore`, started by :mod:`labelvault.restore`) creates a project in a
workspace, its meta and settings, then datasets parents first, images by hash or link, figures
(alpha masks through ``figures.bulk.upload.geometry``), image tags (``tags.entities.bulk.add``,
duplicates kept) and figure tags, mapping every new id to the source row's key.

Modules, one concern each: :mod:`.api` (the client and its error mapping), :mod:`.rows` (keys
and row mapping), :mod:`.capture`, :mod:`.writes` (what a restore creates), :mod:`.restore`
(the journaled order of a restore), :mod:`.reconcile` (what landed although the journal never
heard back), :mod:`.video` and :mod:`.volume` (rows, capture and writes of those modalities),
:mod:`.platform` (the adapter that puts them together).
"""

from __future__ import annotations

from labelvault.platforms.supervisely.api import API_PATH, SUPPORTED_KINDS
from labelvault.platforms.supervisely.platform import SuperviselyPlatform

__all__ = ["API_PATH", "SUPPORTED_KINDS", "SuperviselyPlatform"]
