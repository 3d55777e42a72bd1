"""Periodic jobs: `offload scheduler` and `offload cron list|pause|resume|run`."""

from __future__ import annotations

import sys
from typing import Any, NoReturn

import click

from offload.cli.context import AppLoader
from offload.cli.election import election_options
from offload.cli.logs import log_options
from offload.cli.output import console, new_table, print_json, state_text, when
from offload.cli.retention import retention_options
from offload.core.states import JobState
from offload.runtime.logfmt import configure


@click.command(short_help="Fire periodic schedules, rescue expired leases, prune old jobs.")
@click.argument("app_path", metavar="[MODULE:ATTR]", required=False)
@click.option(
    "--interval",
    type=click.FloatRange(min=0.05),
    default=1.0,
    show_default=True,
    help="Longest sleep between turns, in seconds.",
)
@retention_options
@election_options
@log_options()
@click.pass_obj
def scheduler(
    loader: AppLoader,
    *,
    app_path: str | None,
    interval: float,
    log_level: str,
    log_format: str,
    retention: dict[JobState, float] | None,
    election: dict[str, Any],
) -> NoReturn:
    """Fire the app's periodic schedules, rescue expired leases and prune old jobs.
    MODULE:ATTR names the app (or use --app / $OFFLOAD_APP).

    Run as many replicas as you like, on any hosts: each tick is enqueued exactly once,
    and one replica at a time, elected, rescues, sweeps, rolls up and prunes.
    SIGTERM or SIGINT stops it after the current turn.
    """
    configure(log_level, log_format)
    if app_path:
        loader.path = app_path
    options: dict[str, Any] = {"interval": interval, **election}
    if retention is not None:
        options["retention"] = retention
    runner = loader.app().scheduler(**options)
    sys.exit(runner.run())


@click.group()
def cron() -> None:
    """Inspect and steer periodic schedules."""


@cron.command("list")
@click.option("--json", is_flag=True, help="Print the schedules as JSON.")
@click.pass_obj
def cron_list(loader: AppLoader, json: bool) -> None:
    """Each stored schedule with its next run, last run and last outcome."""
    rows = loader.app().schedule_statuses()
    if json:
        print_json([s.to_json() for s in rows])
        return
    if not rows:
        click.echo("no schedules stored (they are written when a scheduler starts)")
        return
    table = new_table()
    for name in ("name", "cron", "tz", "task", "next run", "last tick", "last job", "status"):
        table.add_column(name)
    for s in rows:
        status = "paused" if s.paused else "active"
        last = "-" if s.last_job_id is None else f"{s.last_job_id} "
        table.add_row(
            s.name,
            s.cron,
            s.tz,
            s.task,
            "-" if s.paused or s.next_run is None else when(s.next_run),
            when(s.last_tick),
            state_text(s.last_state).append(f" #{s.last_job_id}") if s.last_state else last,
            status,
        )
    console.print(table)


@cron.command("pause")
@click.argument("name")
@click.pass_obj
def cron_pause(loader: AppLoader, name: str) -> None:
    """Stop firing NAME on every scheduler replica until resumed."""
    loader.app().cron_pause(name)
    click.echo(f"{name}: paused")


@cron.command("resume")
@click.argument("name")
@click.pass_obj
def cron_resume(loader: AppLoader, name: str) -> None:
    """Fire NAME again from its next tick.

    Ticks that passed while it was paused are not run.
    """
    loader.app().cron_pause(name, paused=False)
    click.echo(f"{name}: resumed")


@cron.command("run")
@click.argument("name")
@click.pass_obj
def cron_run(loader: AppLoader, name: str) -> None:
    """Enqueue NAME's job once, now; print its id."""
    handle = loader.app().cron_run(name)
    click.echo(str(handle.id))
