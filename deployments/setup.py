"""Prepare a Prefect server for labelvault, idempotently, then deploy ``prefect.yaml``.

1. the process work pool the deployments use;
2. the concurrency limits: ``tag:platform:<name>`` caps parallel calls to one platform
   (tasks that call a platform carry that tag); per-project limits are created on first use
   by the flows themselves;
3. the blocks, from the environment: ``LABELVAULT_<PLATFORM>_URL`` / ``_TOKEN`` make a
   Labelvault Platform Connection block named after the platform, ``LABELVAULT_STORE_*``
   the Labelvault Store block ``default``;
4. ``prefect --no-prompt deploy`` of every deployment in ``prefect.yaml`` it can deploy: the
   nightly one needs ``LABELVAULT_NIGHTLY_PROJECT_ID`` (and ``LABELVAULT_NIGHTLY_CONNECTION``,
   default ``LABELVAULT_DEFAULT_CONNECTION``); without it, it is left out and the script says
   so. The run forms offer ``LABELVAULT_DEFAULT_CONNECTION`` as their connection: by default
   the one platform whose URL and token are set, else ``supervisely``.

Run it as ``make deploy`` (or ``python -m deployments.setup``) with ``PREFECT_API_URL`` set.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml  # type: ignore[import-untyped]
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
                platform=platform,
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


NIGHTLY = "nightly-version"
_PROJECT_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


class SetupError(Exception):
    """A setting that would deploy something wrong; the message says what to set."""


def deployment_names(path: Path = REPO / "prefect.yaml") -> list[str]:
    """The deployments ``prefect.yaml`` declares, in order."""
    document = yaml.safe_load(path.read_text())
    return [str(entry["name"]) for entry in document.get("deployments") or []]


def default_connection(environ: dict[str, str]) -> str:
    """The connection the run forms offer first: the one platform whose URL and token are set
    (its block is saved under the platform's name), else ``supervisely``."""
    configured = [
        platform
        for platform in PLATFORMS
        if environ.get(f"LABELVAULT_{platform.upper()}_URL")
        and environ.get(f"LABELVAULT_{platform.upper()}_TOKEN")
    ]
    return configured[0] if len(configured) == 1 else PLATFORMS[0]


def plan_deployments(environ: dict[str, str]) -> tuple[list[str], dict[str, str], list[str]]:
    """Which deployments to deploy, the environment to deploy them with, and notes to print.

    The nightly deployment takes its project from ``LABELVAULT_NIGHTLY_PROJECT_ID``: unset, it is
    left out (a template string must never become a project id); set but malformed, setup stops.
    """
    env = dict(environ)
    env.setdefault("LABELVAULT_DEFAULT_CONNECTION", default_connection(environ))
    env.setdefault("LABELVAULT_NIGHTLY_CONNECTION", env["LABELVAULT_DEFAULT_CONNECTION"])
    names = deployment_names()
    notes: list[str] = []
    project_id = environ.get("LABELVAULT_NIGHTLY_PROJECT_ID", "").strip()
    if not project_id:
        names = [name for name in names if name != NIGHTLY]
        notes.append(
            f"{NIGHTLY}: left out, LABELVAULT_NIGHTLY_PROJECT_ID is not set "
            "(set it to the id of the project to version every night, then run make deploy again)"
        )
    elif not _PROJECT_ID.match(project_id):
        raise SetupError(
            f"LABELVAULT_NIGHTLY_PROJECT_ID={project_id!r} is not a project id: "
            "give the project's id on the platform, e.g. 5007"
        )
    else:
        env["LABELVAULT_NIGHTLY_PROJECT_ID"] = project_id
        notes.append(
            f"{NIGHTLY}: project {project_id} on connection {env['LABELVAULT_NIGHTLY_CONNECTION']}"
        )
    return names, env, notes


def deploy(names: list[str], env: dict[str, str]) -> None:
    """``prefect --no-prompt deploy --name …`` for each of ``names``, from the repository root."""
    command = [sys.executable, "-m", "prefect", "--no-prompt", "deploy"]
    for name in names:
        command += ["--name", name]
    subprocess.run(command, cwd=REPO, env=env, check=True)


def main(argv: list[str] | None = None) -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--platform-limit", type=int, default=DEFAULT_PLATFORM_LIMIT)
    parser.add_argument("--no-deploy", action="store_true", help="only pool, limits, blocks")
    args = parser.parse_args(argv)
    try:
        names, env, notes = plan_deployments(dict(os.environ))
    except SetupError as error:
        sys.exit(f"make deploy: {error}")
    ensure_work_pool()
    ensure_platform_limits(args.platform_limit)
    register_blocks(dict(os.environ))
    for note in notes:
        print(note)
    if not args.no_deploy:
        deploy(names, env)
        print(
            "workers run the flows from a checkout of this repository: start them with "
            "LABELVAULT_CODE_DIR=<that checkout> prefect worker start --pool " + WORK_POOL
        )


if __name__ == "__main__":
    main()
