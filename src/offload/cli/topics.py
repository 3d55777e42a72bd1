"""`offload topics`: list topics and their groups, replay a group, set a topic's retention."""

from __future__ import annotations

from typing import Any

import click

from offload.app import App
from offload.cli.context import AppLoader
from offload.cli.output import console, new_table, print_json
from offload.cli.times import TIME_FORMS, TimeType
from offload.core.errors import GroupNotFound
from offload.core.topics import TopicState


@click.group(
    invoke_without_command=True,
    short_help="Topics and their consumer groups: list, replay, retention.",
)
@click.option("--json", is_flag=True, help="Print the topics as JSON.")
@click.pass_context
def topics(ctx: click.Context, json: bool) -> None:
    """List topics: messages retained (oldest and newest offset), retention, and each
    consumer group's cursor, lag (messages not yet handed out, plus deliveries not over),
    dead deliveries and messages skipped by retention."""
    if ctx.invoked_subcommand is not None:
        return
    loader: AppLoader = ctx.obj
    found = loader.app().topics()
    if json:
        print_json([_as_json(topic) for topic in found])
        return
    if not found:
        click.echo("no topics")
        return
    out = new_table()
    for column in ("topic", "messages", "offsets", "retention", "group", "cursor", "lag",
                   "dead", "skipped"):  # fmt: skip
        out.add_column(column)
    for topic in found:
        first = (topic.name, str(topic.messages), f"{topic.first}-{topic.last}", _retention(topic))
        if not topic.groups:
            out.add_row(*first, "-", "", "", "", "")
        for i, g in enumerate(topic.groups):
            shown = first if i == 0 else ("", "", "", "")
            out.add_row(*shown, g.name, str(g.cursor), str(g.lag), str(g.dead), str(g.skipped))
    console.print(out)


@topics.command("replay", short_help="Deliver a group's messages again from an offset or time.")
@click.argument("group")
@click.option(
    "--from",
    "start",
    required=True,
    metavar="OFFSET|TIME",
    help=f"Deliver again the messages after this offset, or published since TIME: {TIME_FORMS}.",
)
@click.option("--topic", help="The group's topic, when groups of that name read several.")
@click.pass_obj
def topics_replay(loader: AppLoader, group: str, start: str, topic: str | None) -> None:
    """Move GROUP's cursor back (or on) so that the messages after it are delivered again."""
    app = loader.app()
    topic = topic or _topic_of(app, group)
    if start.isdigit():
        cursor = app.replay(topic, group, offset=int(start))
    else:
        cursor = app.replay(topic, group, at=TimeType().convert(start, None, None))
    click.echo(f"{topic}/{group}: cursor at {cursor}")


@topics.command("retention", short_help="Set how long a topic keeps its messages.")
@click.argument("topic")
@click.option("--days", type=float, help="Keep messages this many days (omit: no time bound).")
@click.option("--max-messages", type=int, help="Keep at most this many (omit: no count bound).")
@click.pass_obj
def topics_retention(
    loader: AppLoader, topic: str, days: float | None, max_messages: int | None
) -> None:
    """Set how long TOPIC keeps its messages; the scheduler prunes the rest. A group that
    had not had a pruned message yet skips it, and `offload topics` counts it."""
    loader.app().set_retention(topic, days=days, max_messages=max_messages)
    shown = _retention(TopicState(topic, 0, 0, 0, days and days * 86400.0, max_messages, []))
    click.echo(f"{topic}: retention {shown}")


def _topic_of(app: App, group: str) -> str:
    """The one topic a group of that name reads; a usage error when it is ambiguous."""
    found = [t.name for t in app.topics() for g in t.groups if g.name == group]
    if not found:
        known = sorted({g.name for t in app.topics() for g in t.groups})
        raise GroupNotFound("any topic", group, known)
    if len(found) > 1:
        raise click.UsageError(
            f"groups named {group!r} read topics {', '.join(found)}: pass --topic"
        )
    return found[0]


def _retention(topic: TopicState) -> str:
    parts = []
    if topic.retention_seconds is not None:
        parts.append(f"{topic.retention_seconds / 86400:g} days")
    if topic.retention_messages is not None:
        parts.append(f"{topic.retention_messages} messages")
    return ", ".join(parts) or "forever"


def _as_json(topic: TopicState) -> dict[str, Any]:
    return {
        "name": topic.name,
        "messages": topic.messages,
        "first": topic.first,
        "last": topic.last,
        "retention_seconds": topic.retention_seconds,
        "retention_messages": topic.retention_messages,
        "groups": [
            {
                "name": g.name,
                "cursor": g.cursor,
                "ordered_by_key": g.ordered_by_key,
                "lag": g.lag,
                "dead": g.dead,
                "skipped": g.skipped,
            }
            for g in topic.groups
        ],
    }
