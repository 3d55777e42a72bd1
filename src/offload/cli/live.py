"""Live views (`jobs --watch`, `queues --watch`, `status --follow`): redraw until Ctrl-C.

People get a rich Live display redrawn in place; with --json each refresh prints one
compact JSON document on its own line (JSON lines), for a script to read as they come.
Ctrl-C ends the view cleanly with exit code 0; a view may also end by itself (a followed
job that finished).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, NamedTuple

import click
import orjson
from rich.console import RenderableType
from rich.live import Live

from offload.cli.output import console, print_json


class Frame(NamedTuple):
    """One refresh: what people see, what scripts get, and whether it is the last."""

    view: RenderableType
    document: Any
    last: bool = False


def interval_option() -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The `--interval` option of every live view."""
    return click.option(
        "--interval",
        type=click.FloatRange(min=0.1),
        default=2.0,
        help="Seconds between refreshes of a live view.",
    )


def run_live(frame: Callable[[], Frame], interval: float, *, json: bool) -> Frame:
    """Show `frame()` every `interval` seconds until it is the last or Ctrl-C; return the
    last frame shown."""
    click.echo(f"refreshing every {interval:g}s; Ctrl-C to stop", err=True)
    shown = frame()
    try:
        if json:
            while True:
                click.echo(orjson.dumps(shown.document).decode())
                if shown.last:
                    return shown
                time.sleep(interval)
                shown = frame()
        with Live(shown.view, console=console, auto_refresh=False) as live:
            while not shown.last:
                time.sleep(interval)
                shown = frame()
                live.update(shown.view, refresh=True)
    except KeyboardInterrupt:
        pass
    return shown


def show(frame: Callable[[], Frame], *, watch: bool, interval: float, json: bool) -> None:
    """A listing's output: live with --watch, else one frame, as JSON or for people."""
    if watch:
        run_live(frame, interval, json=json)
    elif json:
        print_json(frame().document)
    else:
        console.print(frame().view)
