"""``labelvault``: capture, list, diff, query, restore and expire versions from a shell.

One module per command group, each registering its commands on the app of :mod:`.app`:

==================  ==============================================================
module              commands
==================  ==============================================================
``app``             the global options (``--store``, ``--platform``, ``--json`` …)
``versions``        ``create`` (alias ``capture``), ``versions``, ``show``, ``update``,
                    ``projects``
``diff``            ``diff``
``query``           ``query``
``restore``         ``restore``
``preview``         ``preview``, ``summary``
``expire``          ``expire``
``verify``          ``verify``, ``unlock``
``webhooks``        ``webhooks serve``, ``webhooks register``
``boundary``        the one error boundary: one line on stderr, exit code 1, 2 or 130
``render``          tables, sizes, progress bars, JSON
``inputs``          checks of URLs, version references and day counts
==================  ==============================================================

A project's history is identified by platform, server host and project id, so ``versions``,
``show``, ``update``, ``diff``, ``query`` and ``expire`` need the server's URL but no token;
only ``create``, ``restore`` and ``preview`` talk to the platform (and ``expire --apply``
when an expired version has a preview).
"""

from __future__ import annotations

# Importing the command modules registers their commands, in the order ``--help`` lists them.
# isort: off
from labelvault.cli import versions as versions
from labelvault.cli import diff as diff
from labelvault.cli import query as query
from labelvault.cli import restore as restore
from labelvault.cli import preview as preview
from labelvault.cli import expire as expire
from labelvault.cli import verify as verify
from labelvault.cli import webhooks as webhooks

# isort: on
from labelvault.cli.app import app, main, run

__all__ = ["app", "main", "run"]
