"""`offload demo`: the bundled example workload on a throwaway SQLite file; needs no --app."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
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
def demo(jobs: int, concurrency: int | None, keep: Path | None) -> None:
    """Run a sample workload; report jobs/s and latency.

    Needs no app: it uses a throwaway SQLite file and the bundled offload.demo.app.
    """
    from offload.demo.run import run_demo

    run_demo(jobs=jobs, concurrency=concurrency, keep=keep)
