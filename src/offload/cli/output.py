"""Printing for the CLI: rich tables for people, JSON for scripts.

Rich drops colours and cursor movement by itself when stdout is not a terminal; markup is
off so that job arguments and error messages are printed exactly as stored.
"""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime
from typing import Any

import click
import orjson
from rich.console import Console
from rich.table import Table
from rich.text import Text

from offload.core.states import JobState
from offload.core.workflow import WorkflowState

#: Piped output is not wrapped at 80 columns, so each row stays on one line for grep and awk.
console = Console(
    markup=False,
    highlight=False,
    width=None if sys.stdout.isatty() or "COLUMNS" in os.environ else 250,
)

STATE_STYLES = {
    JobState.WAITING: "dim",
    JobState.SCHEDULED: "cyan",
    JobState.AVAILABLE: "blue",
    JobState.RUNNING: "yellow",
    JobState.RETRYING: "magenta",
    JobState.SUCCEEDED: "green",
    JobState.DEAD: "bold red",
    JobState.CANCELLED: "dim",
    JobState.SHED: "dim",
}

WORKFLOW_STYLES = {
    WorkflowState.RUNNING: "yellow",
    WorkflowState.SUCCEEDED: "green",
    WorkflowState.FAILED: "bold red",
    WorkflowState.CANCELLED: "dim",
}


def print_json(value: Any) -> None:
    """Write `value` as indented JSON to stdout (datetimes as RFC 3339)."""
    click.echo(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode())


def json_text(value: Any) -> str:
    """Compact JSON of a stored payload, for table cells."""
    return orjson.dumps(value).decode()


def state_text(state: JobState) -> Text:
    """A state name in its colour."""
    return Text(str(state), style=STATE_STYLES[state])


def workflow_state_text(state: WorkflowState) -> Text:
    """A workflow's state in its colour."""
    return Text(str(state), style=WORKFLOW_STYLES[state])


def when(moment: datetime | None, *, precise: bool = False) -> str:
    """A UTC timestamp for display ("-" for none); `precise` adds milliseconds."""
    if moment is None:
        return "-"
    utc = moment.astimezone(UTC)
    text = utc.strftime("%Y-%m-%d %H:%M:%S")
    if precise:
        text += f".{utc.microsecond // 1000:03d}"
    return text + "Z"


def new_table() -> Table:
    """An empty table with the CLI's look: bold headers, no box."""
    return Table(box=None, header_style="bold", pad_edge=False)
