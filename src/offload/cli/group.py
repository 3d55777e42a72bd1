"""The `offload` command group: the global options and every subcommand."""

from __future__ import annotations

import click

from offload import __version__
from offload.cli.bulk import cancel, purge, retry
from offload.cli.context import AppLoader
from offload.cli.cron import cron, scheduler
from offload.cli.demo import demo
from offload.cli.dev import dev
from offload.cli.jobs import enqueue, jobs, status
from offload.cli.migrate import migrate
from offload.cli.queues import queues
from offload.cli.serve import serve
from offload.cli.tokens import tokens
from offload.cli.topics import topics
from offload.cli.workers import worker, workers
from offload.cli.workflows import workflows


@click.group(
    context_settings={
        "auto_envvar_prefix": "OFFLOAD",
        "help_option_names": ["-h", "--help"],
        "show_default": True,
        "max_content_width": 100,
    }
)
@click.option(
    "--app",
    envvar="OFFLOAD_APP",
    metavar="MODULE:ATTR",
    help="The offload.App to use, e.g. myproject.jobs:app (ATTR defaults to app).",
)
@click.option(
    "-v",
    "--traceback",
    is_flag=True,
    help="On a failure, show the whole traceback (an app that fails to import shows its "
    "own frames without it).",
)
@click.version_option(__version__, prog_name="offload")
@click.pass_context
def cli(ctx: click.Context, app: str | None, traceback: bool) -> None:
    """offload: durable background jobs on SQLite or PostgreSQL.

    Flags can also be set as environment variables: OFFLOAD_<COMMAND>_<FLAG>, e.g.
    OFFLOAD_WORKER_CONCURRENCY=8; each option's help names its own, and the ones without
    one (--all, --yes: what a bulk change selects and confirms; serve's --insecure) are
    only ever typed. The
    database URL comes from the App (or $OFFLOAD_URL when the App names none).
    """
    options = ctx.ensure_object(AppLoader)
    options.path, options.traceback = app, traceback


def _show_envvars(command: click.Command) -> None:
    """Make every option of `command` (and of its subcommands) name its environment
    variable in its help, as the flag > environment > App(...) order promises (the
    confirmations of destructive and unsafe commands have none)."""
    for param in command.params:
        if isinstance(param, click.Option) and param.allow_from_autoenv:
            param.show_envvar = param.name not in ("help", "version")
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            _show_envvars(sub)


for command in (
    worker,
    scheduler,
    enqueue,
    status,
    jobs,
    workflows,
    retry,
    cancel,
    purge,
    queues,
    workers,
    cron,
    migrate,
    tokens,
    topics,
    serve,
    dev,
    demo,
):
    cli.add_command(command)
_show_envvars(cli)
