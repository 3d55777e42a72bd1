"""`offload queues`: how many jobs each queue holds, per state, and who serves it."""

from __future__ import annotations

import click
from rich.console import Group, RenderableType
from rich.text import Text

from offload.cli.context import AppLoader
from offload.cli.live import Frame, interval_option, show
from offload.cli.output import STATE_STYLES, new_table
from offload.core.states import JobState
from offload.core.status import QueueStatus

#: Marks a queue with available jobs that no live worker serves.
STRANDED = "!"


@click.command(short_help="Job counts per queue and state; flags queues nobody serves.")
@click.option("--watch", "-w", is_flag=True, help="Refresh the counts until Ctrl-C.")
@interval_option()
@click.option(
    "--json",
    is_flag=True,
    help='Print {"QUEUE": {"counts": {"STATE": N}, "workers": [ID], "served": BOOL}} as '
    "JSON (one line per refresh).",
)
@click.pass_obj
def queues(loader: AppLoader, watch: bool, interval: float, json: bool) -> None:
    """Show job counts per queue and state, marking queues nobody serves.

    A queue with available jobs and no live worker listing it is marked "!", with a
    footnote: its jobs wait until a worker is started with `-q QUEUE`.
    """
    app = loader.app()

    def frame() -> Frame:
        found = app.queue_statuses()
        document = {
            q.name: {"counts": q.counts, "workers": q.workers, "served": q.served} for q in found
        }
        return Frame(_view(found), document)

    show(frame, watch=watch, interval=interval, json=json)


def _view(found: list[QueueStatus]) -> RenderableType:
    """The counts table, then a footnote per stranded queue."""
    if not found:
        return Text("no jobs in any queue")
    present = [s for s in JobState if any(s.value in q.counts for q in found)]
    out = new_table()
    out.add_column("queue")
    for state in present:
        out.add_column(state.value, justify="right", style=STATE_STYLES[state])
    out.add_column("total", justify="right")
    out.add_column("workers", justify="right")
    notes: list[RenderableType] = []
    for q in found:
        cells = [str(q.counts.get(state.value, 0)) for state in present]
        name = f"{q.name} {STRANDED}" if q.stranded else q.name
        out.add_row(name, *cells, str(sum(q.counts.values())), str(len(q.workers)))
        if q.stranded:
            jobs = "job" if q.stranded == 1 else "jobs"
            notes.append(
                Text(
                    f"{STRANDED} {q.name}: {q.stranded} available {jobs}, no live worker serves it"
                )
            )
    return Group(out, *notes) if notes else out
