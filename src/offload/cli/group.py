"""The `offload` command group: the global `--app` option and every subcommand."""

from __future__ import annotations

import click

from offload import __version__
from offload.cli.context import AppLoader
from offload.cli.cron import cron, scheduler
from offload.cli.demo import demo
from offload.cli.jobs import cancel, enqueue, jobs, retry, status
from offload.cli.migrate import migrate
from offload.cli.queues import queues
from offload.cli.workers import worker, workers


@click.group(
    context_settings={"auto_envvar_prefix": "OFFLOAD", "help_option_names": ["-h", "--help"]}
)
@click.option(
    "--app",
    envvar="OFFLOAD_APP",
    show_envvar=True,
    metavar="MODULE:ATTR",
    help="The offload.App to use, e.g. myproject.jobs:app (ATTR defaults to app).",
)
@click.version_option(__version__, prog_name="offload")
@click.pass_context
def cli(ctx: click.Context, app: str | None) -> None:
    """offload: durable background jobs on SQLite or PostgreSQL.

    Every flag can also be set as an environment variable: OFFLOAD_<COMMAND>_<FLAG>,
    e.g. OFFLOAD_WORKER_CONCURRENCY=8. The database URL comes from the App
    (or $OFFLOAD_URL when the App names none).
    """
    ctx.obj = AppLoader(app)


for command in (
    worker,
    scheduler,
    enqueue,
    status,
    jobs,
    retry,
    cancel,
    queues,
    workers,
    cron,
    migrate,
    demo,
):
    cli.add_command(command)
