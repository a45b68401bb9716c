"""``webhooks serve`` and ``webhooks register``: platform webhooks as Prefect events."""

from __future__ import annotations

from typing import Annotated

import typer

from labelvault.cli import inputs
from labelvault.cli.app import ProjectArg, app, state
from labelvault.cli.render import print_json
from labelvault.errors import ConfigurationError
from labelvault.webhooks import (
    DEFAULT_DEDUP_SECONDS,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_PROJECT_CACHE_SECONDS,
    DEFAULT_RATE_BURST,
    DEFAULT_RATE_PER_SECOND,
    SECRET_HEADER,
    check_prefect_api_url,
    serve,
)

__all__ = ["webhooks_app", "webhooks_register", "webhooks_serve"]

webhooks_app = typer.Typer(
    help="The bridge from platform webhooks to labelvault.project.changed Prefect events.",
    no_args_is_help=True,
)
app.add_typer(webhooks_app, name="webhooks")

SecretOpt = Annotated[
    str,
    typer.Option(
        "--secret",
        envvar="LABELVAULT_WEBHOOK_SECRET",
        help="The shared secret webhooks must send in X-Labelvault-Secret (16+ characters).",
        show_default=False,
    ),
]


@webhooks_app.command("serve")
def webhooks_serve(
    *,
    secret: SecretOpt,
    prefect_api_url: Annotated[
        str,
        typer.Option(
            "--prefect-api-url",
            envvar="PREFECT_API_URL",
            help="Where events go.",
            show_default=False,
        ),
    ],
    host: Annotated[str, typer.Option("--host", help="The address to listen on.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", min=1, max=65535, help="The port to listen on.")
    ] = 8765,
    max_body_bytes: Annotated[
        int, typer.Option("--max-body-bytes", min=1, help="Larger webhook bodies get 413.")
    ] = DEFAULT_MAX_BODY_BYTES,
    dedup_seconds: Annotated[
        float,
        typer.Option(
            "--dedup-seconds", min=0, help="One event per project within this window (0: off)."
        ),
    ] = DEFAULT_DEDUP_SECONDS,
    rate: Annotated[
        float,
        typer.Option("--rate", min=0.001, help="Requests per second per sender and connection."),
    ] = DEFAULT_RATE_PER_SECOND,
    burst: Annotated[
        int, typer.Option("--burst", min=1, help="Requests a sender may send at once.")
    ] = DEFAULT_RATE_BURST,
    project_cache_seconds: Annotated[
        float,
        typer.Option(
            "--project-cache-seconds",
            min=0,
            help="How long the answer to 'does this project exist' is kept.",
        ),
    ] = DEFAULT_PROJECT_CACHE_SECONDS,
) -> None:
    """Receive webhooks and emit labelvault.project.changed events (until interrupted).

    Label Studio: point a webhook at /webhooks/labelstudio/<connection> (see `webhooks
    register`). Anything else can POST to /webhooks/<connection>/<project_id>.
    """
    serve(
        prefect_api_url=check_prefect_api_url(prefect_api_url),
        secret=secret,
        host=host,
        port=port,
        max_body_bytes=max_body_bytes,
        dedup_seconds=inputs.finite(dedup_seconds, "--dedup-seconds"),
        rate_per_second=inputs.finite(rate, "--rate"),
        rate_burst=burst,
        project_cache_seconds=inputs.finite(project_cache_seconds, "--project-cache-seconds"),
    )


@webhooks_app.command("register")
def webhooks_register(
    ctx: typer.Context,
    project_id: ProjectArg,
    bridge_url: Annotated[
        str, typer.Argument(help="The bridge's base URL, e.g. http://127.0.0.1:8765.")
    ],
    *,
    secret: SecretOpt,
    connection: Annotated[
        str,
        typer.Option("--connection", help="The connection (block) name the events carry."),
    ] = "labelstudio",
) -> None:
    """Make a Label Studio project send its annotation changes to the bridge (idempotent)."""
    st = state(ctx)
    st.use_project(project_id)
    bridge = inputs.server_url(bridge_url, "BRIDGE_URL").rstrip("/")
    platform = st.connect()
    try:
        register = getattr(platform, "register_webhook", None)
        if register is None:
            raise ConfigurationError(
                f"{st.platform} has no webhooks labelvault can register; post to the bridge's "
                "/webhooks/<connection>/<project_id> from your own automation instead"
            )
        hook = register(
            project_id,
            f"{bridge}/webhooks/labelstudio/{connection}",
            headers={SECRET_HEADER: secret},
        )
    finally:
        platform.close()
    if st.json:
        print_json(
            {
                "webhook_id": hook.id,
                "project_id": project_id,
                "url": hook.url,
                "actions": hook.actions,
            }
        )
        return
    st.out.print(
        f"webhook {hook.id} of project {project_id} → {hook.url} ({', '.join(hook.actions)})",
        soft_wrap=True,
    )
