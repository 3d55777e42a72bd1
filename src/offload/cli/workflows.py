"""`offload workflows`: stored workflows with their progress, newest first; `show` draws
one workflow's graph as a tree with each node's state, `cancel` stops what is left of it.

A node with several parents is drawn under its first one and marked as joining the
others ("↳ also after: a, b"), so a DAG reads as a tree without drawing a node twice.
"""

from __future__ import annotations

from collections.abc import Mapping

import click
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from offload.backends.params import WorkflowNode
from offload.cli.context import AppLoader
from offload.cli.live import Frame, interval_option, show
from offload.cli.output import new_table, print_json, state_text, when, workflow_state_text
from offload.core.states import JobState
from offload.workflow_handle import WorkflowProgress, WorkflowStatus


@click.group(
    invoke_without_command=True,
    short_help="Workflows with their progress, newest first; show or cancel one.",
)
@click.option(
    "--cursor",
    type=int,
    metavar="ID",
    help="Start below workflow ID: the next page, as printed after a full one.",
)
@click.option(
    "--limit", type=click.IntRange(1, 10_000), default=50, help="Workflows per page, at most."
)
@click.option("--watch", "-w", is_flag=True, help="Refresh the page until Ctrl-C.")
@interval_option()
@click.option(
    "--json",
    is_flag=True,
    help='Print {"workflows": [...], "next_cursor": ID} as JSON (one line per refresh).',
)
@click.pass_context
def workflows(
    ctx: click.Context, *, cursor: int | None, limit: int, watch: bool, interval: float, json: bool
) -> None:
    """List workflows, newest first, a page at a time.

    Each with its kind (chain, group, chord, map, workflow), name, state and progress:
    nodes finished of all, then how many are in each unfinished or failed state.
    """
    if ctx.invoked_subcommand is not None:
        return
    app = ctx.ensure_object(AppLoader).app()

    def frame() -> Frame:
        found = app.workflow_statuses(before_id=cursor, limit=limit + 1)
        page = found[:limit]
        next_cursor = page[-1].id if len(found) > limit else None
        document = {"workflows": [w.to_json() for w in page], "next_cursor": next_cursor}
        view: RenderableType = _table(page) if page else Text("no workflows")
        if next_cursor is not None:
            view = Group(view, Text(f"next page: --cursor {next_cursor}"))
        return Frame(view, document)

    show(frame, watch=watch, interval=interval, json=json)


@workflows.command("show", short_help="One workflow's graph as a tree, with each node's state.")
@click.argument("workflow_id", metavar="ID", type=int)
@click.option("--watch", "-w", is_flag=True, help="Refresh the tree until Ctrl-C.")
@interval_option()
@click.option("--json", is_flag=True, help="Print the workflow and its nodes as JSON.")
@click.pass_obj
def workflows_show(
    loader: AppLoader, workflow_id: int, watch: bool, interval: float, json: bool
) -> None:
    """Show workflow ID's graph as a tree, each node with its task, state and attempt."""
    app = loader.app()

    def frame() -> Frame:
        status = app.workflow_status(workflow_id)
        return Frame(tree(status), status.to_json())

    show(frame, watch=watch, interval=interval, json=json)


@workflows.command("cancel", short_help="Cancel the unfinished nodes of one workflow.")
@click.argument("workflow_id", metavar="ID", type=int)
@click.option("--json", is_flag=True, help="Print the outcome as JSON.")
@click.pass_obj
def workflows_cancel(loader: AppLoader, workflow_id: int, json: bool) -> None:
    """Cancel every unfinished node of workflow ID (running ones are asked to stop).

    Finished nodes are left alone. Prints how many jobs were cancelled and how many
    running ones were asked to stop.
    """
    changed = loader.app().cancel_workflow(workflow_id)
    stopping = [c.id for c in changed if c.state is JobState.RUNNING]
    ended = [c.id for c in changed if c.state is not JobState.RUNNING]
    if json:
        print_json({"cancelled": len(ended), "stop_requested": len(stopping), "ids": ended})
        return
    tail = f"; {_jobs(len(stopping))} running, asked to stop" if stopping else ""
    click.echo(f"workflow {workflow_id}: cancelled {_jobs(len(ended))}{tail}")


def _jobs(count: int) -> str:
    return f"{count} job" if count == 1 else f"{count} jobs"


def _table(page: list[WorkflowProgress]) -> Table:
    out = new_table()
    out.add_column("id", justify="right")
    out.add_column("kind")
    out.add_column("name", no_wrap=True, overflow="ellipsis", max_width=40)
    out.add_column("created")
    out.add_column("state")
    out.add_column("progress")
    for w in page:
        out.add_row(
            str(w.id),
            w.kind,
            w.name or "-",
            when(w.created_at),
            workflow_state_text(w.state),
            progress(w.states, w.finished, w.total),
        )
    return out


def progress(counts: Mapping[JobState, int], finished: int, total: int) -> Text:
    """`12/200 done (3 running, 184 waiting, 1 dead)`: nodes finished of all, then each
    state other than succeeded that some node is in, in its colour."""
    out = Text(f"{finished}/{total} done")
    others = [(s, counts[s]) for s in JobState if counts.get(s) and s is not JobState.SUCCEEDED]
    for index, (state, count) in enumerate(others):
        out.append(" (" if index == 0 else ", ")
        out.append(f"{count} ")
        out.append_text(state_text(state))
    if others:
        out.append(")")
    return out


def tree(status: WorkflowStatus, *, marked: int | None = None) -> Tree:
    """The workflow's graph: roots are the nodes with no parent in the workflow; each
    node is drawn once, under its first parent. `marked`: a job id to point at."""
    heading = Text(f"workflow {status.id}", style="bold")
    heading.append(f"{'' if status.name is None else f' {status.name!r}'} ({status.kind})  ")
    heading.append_text(workflow_state_text(status.state))
    heading.append("  ")
    heading.append_text(progress(status.counts, status.finished, status.total))
    root = Tree(heading)
    names = {node.job_id: node.name for node in status.nodes}
    children: dict[int, list[int]] = {}
    roots: list[int] = []
    for node in status.nodes:
        inside = [p for p in node.parents if p in names]
        if inside:
            children.setdefault(inside[0], []).append(node.job_id)
        else:
            roots.append(node.job_id)
    by_id = {node.job_id: node for node in status.nodes}

    def label(node: WorkflowNode) -> Text:
        out = Text(node.name, style="bold")
        out.append(f"  {node.task}  ")
        out.append_text(state_text(node.state))
        out.append(f"  job {node.job_id}")
        if node.attempt:
            out.append(f", attempt {node.attempt}")
        inside = [names[p] for p in node.parents if p in names]
        outside = [str(p) for p in node.parents if p not in names]
        if len(inside) > 1:
            out.append(f"  ↳ also after: {', '.join(inside[1:])}", style="dim")
        if outside:
            out.append(f"  ↳ after job {', '.join(outside)}", style="dim")
        if node.job_id == marked:
            out.append("  ◀ this job", style="bold")
        return out

    # A stack, not recursion: a chain of thousands of nodes is as deep as it is long.
    stack: list[tuple[Tree, int]] = [(root, job_id) for job_id in reversed(roots)]
    while stack:
        branch, job_id = stack.pop()
        added = branch.add(label(by_id[job_id]))
        stack.extend((added, child) for child in reversed(children.get(job_id, ())))
    return root
