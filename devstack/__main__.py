"""``python -m devstack up|down|status`` (``make up`` / ``make down``)."""

import sys

from devstack.stack import main

sys.exit(main())
