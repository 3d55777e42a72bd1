"""`offload serve`: the HTTP API with uvicorn (needs the `offload[server]` extra)."""

from __future__ import annotations

import click

from offload.cli.context import AppLoader
from offload.server import DEFAULT_BODY_LIMIT, DEFAULT_BODY_TIMEOUT, DEFAULT_EVENT_BUFFER


@click.command(short_help="Serve the HTTP API (JSON, OpenAPI at /openapi.json).")
@click.argument("app_path", metavar="[MODULE:APP]", required=False)
@click.option("--host", default="127.0.0.1", help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, help="Port to listen on.")
@click.option(
    "--insecure",
    is_flag=True,
    allow_from_autoenv=False,  # typed each time, never left in the environment
    help="Listen on an address other than loopback though no API token exists, so the API "
    "checks no credentials (logs a warning).",
)
@click.option(
    "--body-limit",
    type=click.IntRange(min=1),
    default=DEFAULT_BODY_LIMIT,
    help="Largest request body, in bytes; a larger one is answered 413.",
)
@click.option(
    "--body-timeout",
    type=click.FloatRange(min=0, min_open=True, max=86400),
    default=DEFAULT_BODY_TIMEOUT,
    help="Seconds a request body may take to arrive; a slower one is answered 408.",
)
@click.option(
    "--event-buffer",
    type=click.IntRange(min=1),
    default=DEFAULT_EVENT_BUFFER,
    help="Events held for each event-stream client; one further behind is sent a reconnect "
    "event and dropped.",
)
@click.pass_obj
def serve(
    loader: AppLoader,
    *,
    app_path: str | None,
    host: str,
    port: int,
    insecure: bool,
    body_limit: int,
    body_timeout: float,
    event_buffer: int,
) -> None:
    """Serve the HTTP API of the App (MODULE:APP, or --app) until Ctrl-C or SIGTERM.

    Requests need a bearer token with their route's scope when any API token exists at
    start (offload tokens create); /health, /ready and /openapi.json stay open. It listens
    on loopback unless --host says otherwise; any other address needs a token, or
    --insecure to serve without credentials.
    """
    from offload.server.serve import serve as run

    if app_path is not None:
        loader.path = app_path
    run(
        loader.app(),
        host=host,
        port=port,
        insecure=insecure,
        body_limit=body_limit,
        body_timeout=body_timeout,
        event_buffer=event_buffer,
    )
