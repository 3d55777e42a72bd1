"""`offload demo`: the bundled example workload on a throwaway SQLite file; needs no --app."""

from __future__ import annotations

from pathlib import Path

import click


@click.group(invoke_without_command=True, short_help="Run a sample workload (or a pipeline).")
@click.option(
    "--jobs",
    type=click.IntRange(min=20),
    default=2000,
    show_default=True,
    help="Jobs in the workload, fan-out children included.",
)
@click.option(
    "-c",
    "--concurrency",
    type=click.IntRange(min=1),
    help="Worker processes [default: 4 x CPU count, at most 16].",
)
@click.option(
    "--keep",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Store the database in FILE (which must not exist) and keep it afterwards.",
)
@click.pass_context
def demo(ctx: click.Context, jobs: int, concurrency: int | None, keep: Path | None) -> None:
    """Run a sample workload; report jobs/s and latency (`demo topics`: a pipeline).

    Needs no app: it uses a throwaway SQLite file and the bundled offload.demo.app.
    """
    if ctx.invoked_subcommand is not None:
        return
    from offload.demo.run import run_demo

    run_demo(jobs=jobs, concurrency=concurrency, keep=keep)


@demo.command("topics", short_help="Run the urls, fetchers, results, writer pipeline.")
@click.option(
    "--messages",
    type=click.IntRange(min=1),
    default=2000,
    show_default=True,
    help="Urls published to the pipeline.",
)
@click.option(
    "-c", "--concurrency", type=click.IntRange(min=1), default=8, show_default=True,
    help="Worker threads.",
)  # fmt: skip
def demo_topics(messages: int, concurrency: int) -> None:
    """Publish urls to a topic; fetchers (flaky, retried) publish results in the
    transaction that acknowledges each url; a writer appends them to a file, checked to
    hold each url once. Needs no app: a throwaway SQLite file."""
    from offload.demo.topics import run_topics_demo

    run_topics_demo(messages=messages, concurrency=concurrency)
