"""`offload queues`: how many jobs each queue holds, per state."""

from __future__ import annotations

import click

from offload.cli.context import AppLoader
from offload.cli.output import STATE_STYLES, console, new_table, print_json
from offload.core.states import JobState


@click.command()
@click.option("--json", is_flag=True, help='Print {"queue": {"state": count}} as JSON.')
@click.pass_obj
def queues(loader: AppLoader, json: bool) -> None:
    """Show job counts per queue (rows) and state (columns)."""
    counts = loader.app().queue_counts()
    if json:
        print_json(counts)
        return
    if not counts:
        click.echo("no jobs in any queue")
        return
    present = [s for s in JobState if any(s.value in per_state for per_state in counts.values())]
    out = new_table()
    out.add_column("queue")
    for state in present:
        out.add_column(state.value, justify="right", style=STATE_STYLES[state])
    out.add_column("total", justify="right")
    for name in sorted(counts):
        per_state = counts[name]
        cells = [str(per_state.get(state.value, 0)) for state in present]
        out.add_row(name, *cells, str(sum(per_state.values())))
    console.print(out)
