"""Suite-wide settings: isolated environment, and the real servers as session fixtures.

Plain ``pytest`` runs the offline tests; ``-m s3``, ``-m labelstudio`` and
``-m prefect_server`` select the suites that start real servers, ``-m supervisely_sdk`` the one
that runs the real Supervisely SDK; ``make test`` runs everything.
"""

from __future__ import annotations

import os
import tempfile

from hypothesis import HealthCheck, settings

# Prefect reads its settings at import: keep every test run off ~/.prefect, telemetry off.
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="labelvault-tests-prefect-")
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["DO_NOT_TRACK"] = "1"
os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "90"
os.environ.pop("PREFECT_API_URL", None)

# Speed is measured by benchmarks/, never by tests: no per-example deadline, which a loaded
# 2-core machine would trip at random.
settings.register_profile("labelvault", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("labelvault")

pytest_plugins = [
    "tests.servers.s3",
    "tests.servers.prefect",
    "tests.servers.labelstudio",
    "tests.servers.supervisely_sdk",
]
