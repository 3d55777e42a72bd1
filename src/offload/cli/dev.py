"""`offload dev`: a worker, the scheduler, the HTTP API and the dashboard in one process,
for trying things out (on a throwaway SQLite file with the bundled demo app when no app
is given)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import click

from offload.app import App
from offload.cli.context import AppLoader

DEMO_PATH = "offload.demo.app:app"


@click.command(short_help="Worker, scheduler, API and dashboard in one process.")
@click.argument("app_path", metavar="[MODULE:APP]", required=False)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", type=click.IntRange(1, 65535), default=8000, show_default=True, help="Port."
)
@click.option(
    "-c",
    "--concurrency",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="Jobs the worker runs at once (threads).",
)
@click.option(
    "--samples/--no-samples",
    default=True,
    show_default=True,
    help="With the demo app: enqueue some sample jobs so the pages show something.",
)
@click.pass_obj
def dev(
    loader: AppLoader,
    *,
    app_path: str | None,
    host: str,
    port: int,
    concurrency: int,
    samples: bool,
) -> None:
    """Run a worker (threads) with the scheduler, and serve the API and the dashboard,
    until Ctrl-C or SIGTERM; then stop them all and exit 0.

    MODULE:APP (or --app) names the App; without one, the bundled demo app runs on a
    throwaway SQLite file, with sample jobs enqueued. It listens on loopback unless
    --host says otherwise, with the rules of `offload serve`.
    """
    from offload.server import asgi
    from offload.server.serve import check_listen, is_loopback, run_uvicorn

    workdir: Path | None = None
    if app_path is not None:
        loader.path = app_path
    if not loader.path:
        workdir = Path(tempfile.mkdtemp(prefix="offload-dev-"))
        os.environ["OFFLOAD_DEMO_URL"] = f"sqlite:///{workdir / 'dev.db'}"  # before the import
        loader.path = DEMO_PATH
    try:
        app = loader.app()
        app.migrate()
        if workdir is not None and samples:
            from offload.demo.dev import enqueue_samples

            enqueue_samples()
        auth = check_listen(app, host, insecure=False)
        api = asgi(app, auth=auth, loopback_only=not auth and is_loopback(host))
        worker = app.worker(
            scheduler=True,
            executor="thread",
            concurrency=concurrency,
            queues=queues_of(app),
            install_signals=False,
        )
        from offload.demo.run import WorkerThread

        thread = WorkerThread(worker, "offload-dev-worker")
        thread.start()
        click.echo(f"offload dev: dashboard at http://{_url_host(host)}:{port}/")
        click.echo(f"offload dev: API at http://{_url_host(host)}:{port}/v1, docs /openapi.json")
        click.echo(f"offload dev: worker on {', '.join(queues_of(app))}, with the scheduler")
        click.echo("offload dev: Ctrl-C or SIGTERM stops everything")
        try:
            run_uvicorn(api, host, port)
        finally:
            click.echo("offload dev: stopping the worker and the scheduler")
            worker.stop()
            thread.join()
        if thread.error is not None:
            raise thread.error
        click.echo("offload dev: stopped")
    finally:
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)


def queues_of(app: App) -> list[str]:
    """Every queue the app's tasks and schedules name, and `default`."""
    names = {d.options.queue for d in app.registry.definitions()}
    names |= {s.queue for s in app.schedules.values() if s.queue}
    return sorted({"default", *(n for n in names if n)})


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


__all__ = ["dev"]
