"""Commands on single jobs and job listings: enqueue, status, jobs (retry, cancel and purge
are in `bulk`)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import click
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from offload.app import App
from offload.cli.context import AppLoader
from offload.cli.live import Frame, interval_option, run_live, show
from offload.cli.output import console, json_text, new_table, print_json, state_text, when
from offload.cli.times import TIME_FORMS, TimeType
from offload.cli.workflows import tree
from offload.core.errors import clip, shorten
from offload.core.job import Job
from offload.core.states import JobState

JsonCallback = Callable[[click.Context, click.Parameter, str | None], Any]


def _json_of(kind: type[list[Any]] | type[dict[str, Any]]) -> JsonCallback:
    """A click callback that decodes an option's text as JSON of one kind.

    Integers are read exactly (orjson would read one past 64 bits as a float, losing
    digits), so that the App refuses the same values from the command line as from Python.
    """
    name = "JSON array" if kind is list else "JSON object"

    def decode(_ctx: click.Context, _param: click.Parameter, value: str | None) -> Any:
        if value is None:
            return None
        try:
            decoded = json.loads(value, parse_constant=_not_json)
        except RecursionError:
            raise click.BadParameter(f"{shorten(value)} is not JSON (nested too deeply)") from None
        except ValueError as exc:  # JSONDecodeError, or an integer of 4,300+ digits
            raise click.BadParameter(f"{shorten(value)} is not JSON ({clip(str(exc))})") from None
        if not isinstance(decoded, kind):
            raise click.BadParameter(f"{shorten(value)} is not a {name}")
        return decoded

    return decode


def _not_json(constant: str) -> Any:
    """Refuse NaN and Infinity, which Python's json module reads but JSON does not have."""
    raise ValueError(f"{constant} is not a JSON value")


@click.command()
@click.argument("task")
@click.option(
    "--args", metavar="JSON", callback=_json_of(list), help="Positional arguments, a JSON array."
)
@click.option(
    "--kwargs", metavar="JSON", callback=_json_of(dict), help="Keyword arguments, a JSON object."
)
@click.option("--queue", help="Queue instead of the task's own.")
@click.option(
    "--delay", type=float, help="Seconds from now until the job may run (at most 100 years)."
)
@click.option("--priority", type=int, help="Higher runs first (-1000..1000).")
@click.option("--max-attempts", type=int, help="Attempts before the job is dead.")
@click.option("--channel", help="Event channel its changes are published on (e.g. user:42).")
@click.option("--json", is_flag=True, help='Print {"id": ...} as JSON.')
@click.pass_obj
def enqueue(
    loader: AppLoader,
    *,
    task: str,
    args: list[Any] | None,
    kwargs: dict[str, Any] | None,
    queue: str | None,
    delay: float | None,
    priority: int | None,
    max_attempts: int | None,
    channel: str | None,
    json: bool,
) -> None:
    """Enqueue a job of TASK; print its id.

    The id is printed once the job is committed to the database.
    """
    given = {
        "queue": queue,
        "delay": delay,
        "priority": priority,
        "max_attempts": max_attempts,
        "channel": channel,
    }
    options = {name: value for name, value in given.items() if value is not None}
    handle = loader.app().enqueue(task, args, kwargs, **options)
    if json:
        print_json({"id": handle.id})
    else:
        click.echo(handle.id)


@click.command()
@click.argument("job_id", metavar="ID", type=int)
@click.option("--traceback", is_flag=True, help="Show the traceback of each error.")
@click.option(
    "--follow",
    "-f",
    is_flag=True,
    help="Refresh until the job finishes (or Ctrl-C), then print its final state.",
)
@interval_option()
@click.option("--json", is_flag=True, help="Print the job as JSON (one line per refresh).")
@click.pass_obj
def status(
    loader: AppLoader, *, job_id: int, traceback: bool, follow: bool, interval: float, json: bool
) -> None:
    """Show one job in detail.

    State, attempts, arguments, times, worker, result and errors (--traceback for theirs);
    for a node of a workflow, then the workflow's tree (`offload workflows show`).
    """
    app = loader.app()
    handle = app.job(job_id)
    if not follow:
        job = handle.job()
        if json:
            print_json(job.to_dict())
        else:
            console.print(_status_view(app, job, traceback))
        return

    def frame() -> Frame:
        job = handle.job()
        return Frame(_status_view(app, job, traceback), job.to_dict(), job.state.finished)

    last = run_live(frame, interval, json=json)
    if last.last and not json:
        click.echo(f"job {job_id} finished: {last.document['state']}")


def _status_view(app: App, job: Job, traceback: bool) -> Group:
    """The `status` view of one job: its details, its errors, then the tree of the
    workflow it is a node of, if any (the job pointed at)."""
    grid = new_table()
    grid.show_header = False
    grid.add_column(style="bold")
    grid.add_column()
    for name, value in _detail_rows(job):
        grid.add_row(name, value)
    parts: list[RenderableType] = [Text(f"job {job.id}", style="bold"), grid]
    if job.errors:
        parts.append(Text(f"errors ({len(job.errors)})", style="bold"))
    for error in job.errors:
        parts.append(_error_line(error))
        if traceback and error.get("traceback"):
            parts.append(Text(str(error["traceback"]).rstrip(), style="dim"))
    if job.workflow_id is not None:
        parts.append(tree(app.workflow_status(job.workflow_id), marked=job.id))
    return Group(*parts)


def _detail_rows(job: Job) -> list[tuple[str, str | Text]]:
    """(label, value) pairs of the `status` view, in reading order."""
    state = state_text(job.state)
    if job.cancel_requested and not job.state.finished:
        state.append(" (cancel requested)")
    rows: list[tuple[str, str | Text]] = [
        ("state", state),
        ("task", job.task),
        ("queue", job.queue),
        ("priority", str(job.priority)),
        ("attempt", f"{job.attempt}/{job.max_attempts}"),
    ]
    if job.progress is not None:
        fraction, message = job.progress.get("fraction"), job.progress.get("message")
        percent = f"{fraction:.0%}" if isinstance(fraction, int | float) else "?"
        rows.append(("progress", f"{percent} {message}" if message else percent))
    return [
        *rows,
        ("args", json_text(job.args)),
        ("kwargs", json_text(job.kwargs)),
        ("enqueued", when(job.enqueued_at, precise=True)),
        ("run at", when(job.run_at, precise=True)),
        ("started", when(job.started_at, precise=True)),
        ("finished", when(job.finished_at, precise=True)),
        ("worker", job.worker or "-"),
        ("result", "-" if job.result is None else json_text(job.result)),
        *_key_rows(job),
    ]


def _key_rows(job: Job) -> list[tuple[str, str | Text]]:
    """The job's work-shaping keys, its successor and its workflow, only those it has."""
    shown = {
        "unique key": job.unique_key,
        "idempotency key": job.idempotency_key,
        "replace key": job.replace_key,
        "superseded by": None if job.superseded_by is None else str(job.superseded_by),
        "workflow": None if job.workflow_id is None else f"{job.workflow_id}, node {job.node!r}",
    }
    return [(label, value) for label, value in shown.items() if value is not None]


def _error_line(error: dict[str, Any]) -> Text:
    """`attempt N at TIME: Type: message` for one stored error entry."""
    at = error.get("at")
    moment = when(datetime.fromtimestamp(at, UTC)) if isinstance(at, int | float) else "?"
    line = Text(f"  attempt {error.get('attempt', '?')} at {moment}: ")
    line.append(str(error.get("type", "Error")), style="red")
    line.append(f": {error.get('message', '')}")
    return line


@click.command()
@click.option("--queue", help="Only jobs of this queue.")
@click.option("--state", type=click.Choice([s.value for s in JobState]), help="Only this state.")
@click.option("--task", help="Only jobs of this task.")
@click.option("--before", type=TimeType(), help=f"Only jobs enqueued before TIME: {TIME_FORMS}.")
@click.option("--after", type=TimeType(), help="Only jobs enqueued at or after TIME.")
@click.option(
    "--cursor",
    type=int,
    metavar="ID",
    help="Start below job ID: the next page, as printed after a full one.",
)
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, help="Jobs per page, at most.")
@click.option("--watch", "-w", is_flag=True, help="Refresh the page until Ctrl-C.")
@interval_option()
@click.option(
    "--json",
    is_flag=True,
    help='Print {"jobs": [...], "next_cursor": ID} as JSON (one line per refresh).',
)
@click.pass_obj
def jobs(
    loader: AppLoader,
    *,
    queue: str | None,
    state: str | None,
    task: str | None,
    before: datetime | timedelta | None,
    after: datetime | timedelta | None,
    cursor: int | None,
    limit: int,
    watch: bool,
    interval: float,
    json: bool,
) -> None:
    """List jobs, newest first, a page at a time."""
    app = loader.app()

    def frame() -> Frame:
        found = app.jobs(
            queue=queue,
            state=state,
            task=task,
            before=before,
            after=after,
            before_id=cursor,
            limit=limit + 1,
        )
        page = found[:limit]
        next_cursor = page[-1].id if len(found) > limit else None
        document = {"jobs": [job.to_dict() for job in page], "next_cursor": next_cursor}
        view: RenderableType = _jobs_table(page) if page else Text("no jobs")
        if next_cursor is not None:
            view = Group(view, Text(f"next page: --cursor {next_cursor}"))
        return Frame(view, document)

    show(frame, watch=watch, interval=interval, json=json)


def _jobs_table(page: list[Job]) -> Table:
    out = new_table()
    out.add_column("id", justify="right")
    out.add_column("state")
    out.add_column("task")
    out.add_column("queue")
    out.add_column("attempt", justify="right")
    out.add_column("enqueued")
    out.add_column("arguments", no_wrap=True, overflow="ellipsis", max_width=40)
    for job in page:
        arguments = json_text(job.args) + (f" {json_text(job.kwargs)}" if job.kwargs else "")
        out.add_row(
            str(job.id),
            state_text(job.state),
            job.task,
            job.queue,
            f"{job.attempt}/{job.max_attempts}",
            when(job.enqueued_at),
            arguments,
        )
    return out
