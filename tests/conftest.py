"""Suite-wide settings: isolated environment, and the real servers as session fixtures.

Plain ``pytest`` runs the offline tests; ``-m s3``, ``-m labelstudio`` and
``-m prefect_server`` select the suites that start real servers; ``make test`` runs everything.
"""

from __future__ import annotations

pytest_plugins = [
    "tests.servers.s3",
    "tests.servers.prefect",
]
