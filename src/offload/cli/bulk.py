"""Commands that change many jobs at once: retry, cancel and purge, by ids and/or filters.

Each runs as one statement in the database, so a job a worker claims meanwhile is either
seen as running or not at all. Ids and filters together must all hold (the filters narrow
the ids). With no id and no filter a command is refused: taking every job needs `--all`.
One id and nothing else keeps the single-job form, which explains a job it cannot change.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar, cast

import click

from offload.cli.context import AppLoader
from offload.cli.output import print_json
from offload.cli.times import TIME_FORMS, TimeType
from offload.core.records import JobChange
from offload.core.selection import ACCEPTED, JobSelection
from offload.core.states import JobState

F = TypeVar("F", bound=Callable[..., Any])


def _filters(operation: str) -> Callable[[F], F]:
    """The ids argument and filter options of one bulk command."""
    states = sorted(state.value for state in ACCEPTED[operation])

    def add(command: F) -> F:
        for option in reversed(
            [
                click.argument("ids", metavar="[ID]...", nargs=-1, type=int),
                click.option(
                    "--state",
                    type=click.Choice(states),
                    help=f"Only jobs in this state (by default every state {operation} takes).",
                ),
                click.option("--queue", help="Only jobs of this queue."),
                click.option("--task", help="Only jobs of this task."),
                click.option(
                    "--before",
                    type=TimeType(),
                    help=f"Only jobs enqueued before TIME: {TIME_FORMS}.",
                ),
                click.option(
                    "--after", type=TimeType(), help="Only jobs enqueued at or after TIME."
                ),
                click.option(
                    "--all",
                    "all_jobs",
                    is_flag=True,
                    allow_from_autoenv=False,  # typed each time, never left in the environment
                    help=f"Take every job {operation} accepts when no id or filter is given.",
                ),
                click.option("--json", is_flag=True, help="Print the outcome as JSON."),
            ]
        ):
            command = option(command)
        return command

    return add


def _selection(ids: tuple[int, ...], **given: Any) -> JobSelection:
    """The App's selection from the command's ids and options (unset ones left out)."""
    selection: dict[str, Any] = {k: v for k, v in given.items() if v is not None and v is not False}
    if ids:
        selection["ids"] = list(ids)
    return cast(JobSelection, selection)


def _single(ids: tuple[int, ...], given: dict[str, Any]) -> int | None:
    """The id when the command names exactly one job and nothing else."""
    return ids[0] if len(ids) == 1 and all(v in (None, False) for v in given.values()) else None


@click.command(short_help="Run dead, cancelled or shed jobs again, by id or filter.")
@_filters("retry")
@click.pass_obj
def retry(loader: AppLoader, /, ids: tuple[int, ...], json: bool, **given: Any) -> None:
    """Run dead, cancelled or shed jobs again: by ID, or every one matching the filters.

    Each job gets its task's attempt budget once more and keeps its earlier errors; jobs in
    other states are left alone. Ids and filters together must all hold. Prints how many
    jobs changed ("retried 12 jobs"); one ID alone prints that job's new state, or why
    it cannot be retried.
    """
    app = loader.app()
    single = _single(ids, given)
    if single is not None:
        job = app.retry(single)
        changed = [JobChange(job.id, job.queue, job.state)]
        if not json:
            click.echo(f"job {job.id}: {job.state}")
            return
    else:
        changed = app.retry_many(**_selection(ids, **given))
    if json:
        print_json({"retried": len(changed), "ids": [c.id for c in changed]})
    else:
        click.echo(f"retried {_jobs(len(changed))}")


@click.command(short_help="Cancel jobs by id or filter (running ones are asked to stop).")
@_filters("cancel")
@click.pass_obj
def cancel(loader: AppLoader, /, ids: tuple[int, ...], json: bool, **given: Any) -> None:
    """Cancel queued jobs (running ones are asked to stop): by ID, or by filters.

    Finished jobs are left alone. Ids and filters together must all hold. Prints how many
    jobs were cancelled and how many running ones were asked to stop; one ID alone prints
    that job's state, or why it cannot be cancelled.
    """
    app = loader.app()
    single = _single(ids, given)
    if single is not None:
        job = app.cancel(single)
        changed = [JobChange(job.id, job.queue, job.state)]
        if not json:
            note = " (cancel requested)" if job.state is JobState.RUNNING else ""
            click.echo(f"job {job.id}: {job.state}{note}")
            return
    else:
        changed = app.cancel_many(**_selection(ids, **given))
    stopping = [c.id for c in changed if c.state is JobState.RUNNING]
    ended = [c.id for c in changed if c.state is not JobState.RUNNING]
    if json:
        print_json({"cancelled": len(ended), "stop_requested": len(stopping), "ids": ended})
        return
    tail = f"; {_jobs(len(stopping))} running, asked to stop" if stopping else ""
    click.echo(f"cancelled {_jobs(len(ended))}{tail}")


@click.command(short_help="Delete finished jobs by id or filter (asks first).")
@_filters("purge")
@click.option(
    "--yes",
    "-y",
    is_flag=True,
    allow_from_autoenv=False,  # a deletion is confirmed by hand, never by the environment
    help="Delete without asking first.",
)
@click.pass_obj
def purge(loader: AppLoader, /, ids: tuple[int, ...], json: bool, yes: bool, **given: Any) -> None:
    """Delete finished jobs (succeeded, dead, cancelled, shed) for good, by ID or filters.

    Asks first unless --yes; without a terminal to ask on, --yes is required. Jobs still
    queued or running are never deleted. Prints how many jobs were deleted.
    """
    selection = _selection(ids, **given)
    if not yes:
        if not sys.stdin.isatty():
            raise click.UsageError(
                "purge deletes jobs for good: pass --yes to confirm (no terminal to ask on)"
            )
        if not click.confirm(f"Delete {_describe(selection)} for good?", err=True):
            raise click.ClickException("not confirmed: nothing deleted")
    count = loader.app().purge(**selection)
    if json:
        print_json({"purged": count})
    else:
        click.echo(f"purged {_jobs(count)}")


def _describe(selection: JobSelection) -> str:
    """What a purge would delete, in words, for its question."""
    parts = []
    for name, value in selection.items():
        if name == "ids" and isinstance(value, list):
            parts.append(f"ids {', '.join(map(str, value))}")
        elif name in ("before", "after"):
            moment = f"{value} ago" if isinstance(value, timedelta) else str(value)
            parts.append(f"enqueued {name} {moment}")
        elif name != "all_jobs":
            parts.append(f"{name} {value}")
    return "every finished job" + (f" with {', '.join(parts)}" if parts else "")


def _jobs(count: int) -> str:
    """`1 job`, `12 jobs`."""
    return f"{count} job" if count == 1 else f"{count} jobs"
