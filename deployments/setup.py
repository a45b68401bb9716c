"""Prepare a Prefect server for labelvault, idempotently, then deploy ``prefect.yaml``.

1. the process work pool the deployments use;
2. the concurrency limits: ``tag:platform:<name>`` caps parallel calls to one platform
   (tasks that call a platform carry that tag); per-project limits are created on first use
   by the flows themselves;
3. the blocks, from the environment: ``LABELVAULT_<PLATFORM>_URL`` / ``_TOKEN`` make a
   Labelvault Platform Connection block named after the platform, ``LABELVAULT_STORE_*``
   the Labelvault Store block ``default``;
4. ``prefect --no-prompt deploy --all``.

Run it as ``make deploy`` (or ``python -m deployments.setup``) with ``PREFECT_API_URL`` set.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.exceptions import ObjectAlreadyExists
from pydantic import SecretStr

from labelvault.settings import StoreSettings
from tasks.blocks import PlatformConnectionBlock, StoreBlock

WORK_POOL = "labelvault"
PLATFORMS = ("supervisely", "labelstudio")
DEFAULT_PLATFORM_LIMIT = 4
REPO = Path(__file__).resolve().parents[1]


def ensure_work_pool(name: str = WORK_POOL) -> None:
    """Create the process work pool unless it exists."""
    with get_client(sync_client=True) as client:
        try:
            client.create_work_pool(WorkPoolCreate(name=name, type="process"))
            print(f"work pool {name!r}: created")
        except ObjectAlreadyExists:
            print(f"work pool {name!r}: exists")


def ensure_platform_limits(limit: int) -> None:
    """Cap concurrent platform-calling tasks per platform (the ``platform:<name>`` tags)."""
    with get_client(sync_client=True) as client:
        for platform in PLATFORMS:
            client.upsert_global_concurrency_limit_by_name(f"tag:platform:{platform}", limit)
            print(f"concurrency limit tag:platform:{platform} = {limit}")


def register_blocks(environ: dict[str, str]) -> None:
    """Save the blocks the environment describes (overwriting older values)."""
    for platform in PLATFORMS:
        url = environ.get(f"LABELVAULT_{platform.upper()}_URL")
        token = environ.get(f"LABELVAULT_{platform.upper()}_TOKEN")
        if url and token:
            PlatformConnectionBlock(
                platform=platform,  # type: ignore[arg-type]
                server_url=url,
                token=SecretStr(token),
            ).save(platform, overwrite=True)
            print(f"block labelvault-platform-connection/{platform}: saved")
    store = StoreSettings()
    StoreBlock(
        url=_absolute_store_url(store.url),
        s3_endpoint_url=store.s3_endpoint_url,
        s3_region=store.s3_region,
        s3_access_key=store.s3_access_key,
        s3_secret_key=store.s3_secret_key,
        s3_addressing_style=store.s3_addressing_style,
    ).save("default", overwrite=True)
    print("block labelvault-store/default: saved")


def _absolute_store_url(url: str) -> str:
    """Workers may run elsewhere: pin a relative folder to an absolute path now."""
    if "://" in url:
        return url
    return str(Path(url).expanduser().resolve())


def deploy() -> None:
    """``prefect --no-prompt deploy --all`` from the repository root."""
    subprocess.run(
        [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all"], cwd=REPO, check=True
    )


def main(argv: list[str] | None = None) -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--platform-limit", type=int, default=DEFAULT_PLATFORM_LIMIT)
    parser.add_argument("--no-deploy", action="store_true", help="only pool, limits, blocks")
    args = parser.parse_args(argv)
    ensure_work_pool()
    ensure_platform_limits(args.platform_limit)
    register_blocks(dict(os.environ))
    if not args.no_deploy:
        deploy()


if __name__ == "__main__":
    main()
