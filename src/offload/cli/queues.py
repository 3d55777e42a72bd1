"""`offload queues`: each queue's jobs per state, flow control and who serves it; `set`,
`pause`, `resume` and `show` steer and inspect one queue through the App."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click
from rich.console import Group, RenderableType
from rich.text import Text

from offload.cli.context import AppLoader
from offload.cli.live import Frame, interval_option, show
from offload.cli.output import STATE_STYLES, console, new_table, print_json
from offload.core.flow import DEFAULT_AGING, OVERLOAD_ACTIONS, QueuePolicy
from offload.core.states import JobState
from offload.core.status import QueueStatus

#: Marks a queue with available jobs that no live worker serves.
STRANDED = "!"

#: The word that clears a bound in `offload queues set` (None in `App.set_queue`).
CLEAR = "none"


@click.group(
    invoke_without_command=True,
    short_help="Job counts and flow control per queue; set, pause, resume, show one.",
)
@click.option("--watch", "-w", is_flag=True, help="Refresh the listing until Ctrl-C.")
@interval_option()
@click.option(
    "--json",
    is_flag=True,
    help='Print {"QUEUE": {"counts": {"STATE": N}, "workers": [ID], "served": BOOL, ...}} '
    "as JSON, with the fields of `queues show --json` (one line per refresh).",
)
@click.pass_context
def queues(ctx: click.Context, watch: bool, interval: float, json: bool) -> None:
    """Show each queue's jobs per state and its flow control, marking queues nobody serves.

    Columns after the states: workers serving it, drain rate (jobs completed per second
    by the live workers), the wait of its oldest due job, jobs held back by a full
    concurrency limit, paused, and the limits in force (the queue's, then its tasks').
    A queue with available jobs and no live worker listing it is marked "!", with a
    footnote: its jobs wait until a worker is started with `-q QUEUE`.
    """
    if ctx.invoked_subcommand is not None:
        return
    app = ctx.ensure_object(AppLoader).app()

    def frame() -> Frame:
        found = app.queue_statuses()
        return Frame(_view(found), {q.name: q.to_json() for q in found})

    show(frame, watch=watch, interval=interval, json=json)


class _Bound(click.ParamType[int | float | str, Any]):
    """A number, or `none` to clear the bound (restore the default)."""

    def __init__(self, kind: type[int] | type[float]) -> None:
        self.kind = kind
        self.name = "integer" if kind is int else "seconds"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        if value.strip().lower() == CLEAR:
            return CLEAR
        try:
            return self.kind(value)
        except ValueError:
            self.fail(f"{value!r} is not {'an integer' if self.kind is int else 'a number'} "
                      f"or '{CLEAR}'", param, ctx)  # fmt: skip


class _RateOrNone(click.ParamType[str, Any]):
    """A rate such as 20/s, checked by the App, or `none`."""

    name = "rate"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        return CLEAR if isinstance(value, str) and value.strip().lower() == CLEAR else value


def _bound(
    flag: str, kind: type[int] | type[float], text: str
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    metavar = "N" if kind is int else "SECONDS"
    return click.option(flag, type=_Bound(kind), metavar=f"{metavar}|none", help=text)


@queues.command("set")
@click.argument("name")
@_bound("--max-depth", int, "Jobs not yet started (available, scheduled, retrying) beyond "
        "which an enqueue raises QueueFull [queue default: none].")  # fmt: skip
@_bound("--admit-depth", int, "Not-started jobs above which enqueues below --admit-priority "
        "are refused or shed [queue default: none].")  # fmt: skip
@_bound("--admit-priority", int, "Priority an enqueue needs to be admitted above "
        "--admit-depth or --max-wait [queue default: 1].")  # fmt: skip
@_bound("--max-wait", float, "Seconds the oldest due job may wait before admission control "
        "applies [queue default: none].")  # fmt: skip
@click.option(
    "--overload",
    type=click.Choice(OVERLOAD_ACTIONS),
    help="What admission control does with an enqueue it turns away [queue default: refuse].",
)
@_bound("--shed-priority", int, "Jobs below this priority are shed above --shed-depth "
        "[queue default: none].")  # fmt: skip
@_bound("--shed-depth", int, "Not-started jobs above which low-priority jobs are shed "
        "[queue default: none].")  # fmt: skip
@_bound("--resume-depth", int, "Not-started jobs below which the sweep re-admits shed "
        "jobs [queue default: half of --shed-depth].")  # fmt: skip
@_bound("--aging", float, "Seconds of head start per priority step (0: first come, first "
        f"served) [queue default: {DEFAULT_AGING:g}].")  # fmt: skip
@_bound("--concurrency", int, "Jobs of the queue running at once, across all workers "
        "[queue default: none].")  # fmt: skip
@click.option(
    "--rate-limit",
    type=_RateOrNone(),
    metavar="RATE|none",
    help="Starts per window across all workers: 20/s, 100/m, 5/h, 3/10s [queue default: none].",
)
@click.option("--json", is_flag=True, help="Print the new policy as JSON.")
@click.pass_obj
def queues_set(loader: AppLoader, /, name: str, json: bool, **given: Any) -> None:
    """Change NAME's policy at run time, keeping the settings not given.

    `none` clears a bound or restores its default. The change lasts until the code
    declares a different policy with `app.queue`; a bad value changes nothing.
    """
    changes = {key: None if v == CLEAR else v for key, v in given.items() if v is not None}
    if not changes:
        raise click.UsageError("nothing to change: give at least one setting, e.g. --max-depth")
    policy = loader.app().set_queue(name, **changes)
    if json:
        print_json(policy.to_json())
    else:
        click.echo(f"{name}: {describe(policy)}")


@queues.command("pause")
@click.argument("name")
@click.pass_obj
def queues_pause(loader: AppLoader, name: str) -> None:
    """Stop claims from NAME on every worker until resumed.

    Running jobs finish; enqueues still land unless the queue is full.
    """
    loader.app().pause_queue(name)
    click.echo(f"{name}: paused")


@queues.command("resume")
@click.argument("name")
@click.pass_obj
def queues_resume(loader: AppLoader, name: str) -> None:
    """Let workers claim from NAME again."""
    loader.app().resume_queue(name)
    click.echo(f"{name}: resumed")


@queues.command("move")
@click.argument("name")
@click.argument("shard")
@click.pass_obj
def queues_move(loader: AppLoader, name: str, shard: str) -> None:
    """Send NAME's new jobs to SHARD from now on (an app given shards=).

    Its jobs on the old shard stay there and run there; producers with an older shard
    map are refused by the old shard and follow the move.
    """
    loader.app().move_queue(name, shard)
    click.echo(f"{name}: new jobs go to shard {shard!r}")


@queues.command("show")
@click.argument("name")
@click.option("--json", is_flag=True, help="Print the queue's policy and figures as JSON.")
@click.pass_obj
def queues_show(loader: AppLoader, name: str, json: bool) -> None:
    """Show NAME's policy and figures.

    Its policy, pause, job counts, drain rate, oldest wait, limits and held-back jobs.
    """
    q = loader.app().queue_status(name)
    if json:
        print_json({"name": q.name, **q.to_json()})
        return
    out = new_table()
    out.add_column("queue")
    out.add_column(q.name)
    counts = ", ".join(f"{state} {n}" for state, n in q.counts.items()) or "no jobs"
    rows = [
        ("policy", describe(q.policy or QueuePolicy())),
        ("paused", "yes" if q.paused else "no"),
        ("jobs", counts),
        ("drain rate", f"{q.drain_rate:.2f} jobs/s"),
        ("oldest wait", _age(q.oldest_available)),
        ("limits", ", ".join(q.limits) or "none"),
        ("held back", str(q.held)),
        ("shed", str(q.shed)),
        ("workers", ", ".join(q.workers) or "none live"),
    ]
    for label, value in rows:
        out.add_row(label, value)
    console.print(out)


def describe(policy: QueuePolicy) -> str:
    """The settings that differ from the defaults, as `--option value` words."""
    default = QueuePolicy().to_json()
    words = []
    for key, value in policy.to_json().items():
        if value != default[key] and not (key == "resume_depth" and _derived(policy)):
            words.append(f"{key.replace('_', '-') if key != 'rate' else 'rate-limit'} {value}")
    return ", ".join(words) or "no bounds (defaults)"


def _derived(policy: QueuePolicy) -> bool:
    """Whether resume_depth is the default one derived from shed_depth."""
    return policy.shed_depth is not None and policy.resume_depth == policy.shed_depth // 2


def _age(seconds: float | None) -> str:
    """A wait for people: 45s, 12m, 3.5h ("-" for none)."""
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def _view(found: list[QueueStatus]) -> RenderableType:
    """The listing table, then a footnote per stranded queue."""
    if not found:
        return Text("no jobs in any queue")
    present = [s for s in JobState if any(s.value in q.counts for q in found)]
    out = new_table()
    out.add_column("queue")
    for state in present:
        out.add_column(state.value, justify="right", style=STATE_STYLES[state])
    out.add_column("total", justify="right")
    out.add_column("workers", justify="right")
    out.add_column("drain/s", justify="right")
    out.add_column("oldest", justify="right")
    out.add_column("held", justify="right")
    out.add_column("paused")
    out.add_column("limits")
    notes: list[RenderableType] = []
    for q in found:
        cells = [str(q.counts.get(state.value, 0)) for state in present]
        name = f"{q.name} {STRANDED}" if q.stranded else q.name
        out.add_row(
            name,
            *cells,
            str(sum(q.counts.values())),
            str(len(q.workers)),
            f"{q.drain_rate:.1f}" if q.drain_rate else "-",
            _age(q.oldest_available),
            str(q.held),
            "yes" if q.paused else "-",
            ", ".join(q.limits) or "-",
        )
        if q.stranded:
            jobs = "job" if q.stranded == 1 else "jobs"
            notes.append(
                Text(
                    f"{STRANDED} {q.name}: {q.stranded} available {jobs}, no live worker serves it"
                )
            )
    return Group(out, *notes) if notes else out
