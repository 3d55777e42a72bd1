"""Running a worker, and listing the workers that are registered."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, NoReturn

import click

from offload.cli.context import AppLoader
from offload.cli.election import election_options
from offload.cli.logs import log_options
from offload.cli.output import console, new_table, print_json, when
from offload.cli.retention import retention_options
from offload.core.errors import ExtraMissing
from offload.core.options import EXECUTORS, check_name
from offload.core.states import JobState
from offload.runtime.logfmt import configure
from offload.runtime.memory import keep_freed_memory

if TYPE_CHECKING:
    from rich.table import Table

    from offload.app import App
    from offload.core.status import WorkerStatus
    from offload.runtime.metrics import WorkerMetrics
    from offload.runtime.scheduler import Scheduler


@click.command()
@click.argument("app_path", metavar="[MODULE:ATTR]", required=False)
@click.option(
    "-q",
    "--queues",
    multiple=True,
    default=("default",),
    show_default=True,
    help="Queues to serve, taken in turn: comma-separated, and/or the option repeated.",
)
@click.option(
    "--groups",
    metavar="GROUP[,GROUP...]",
    help="Serve only these consumer groups of the app's subscribers [default: all of them].",
)
@click.option(
    "-c", "--concurrency", type=click.IntRange(min=1), help="Jobs at once [default: CPU count]."
)
@click.option(
    "--executor",
    type=click.Choice(EXECUTORS),
    default="process",
    help="Where jobs run: child processes (isolation, limits), threads, or an asyncio loop.",
)
@click.option("--burst", is_flag=True, help="Exit once no job is due.")
@click.option(
    "--max-jobs-per-child",
    type=click.IntRange(min=1),
    help="Replace a child process after this many jobs.",
)
@click.option(
    "--max-child-memory",
    type=click.FloatRange(min=0, min_open=True),
    help="Replace a child process whose memory grew past this many MiB.",
)
@click.option("--scheduler", is_flag=True, help="Also fire the app's periodic schedules.")
@click.option(
    "--lease",
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds a claim lasts without a heartbeat.",
)
@click.option(
    "--shutdown-timeout",
    type=click.FloatRange(min=0),
    help="Seconds running jobs may take to finish after SIGTERM.",
)
@click.option(
    "--poll-interval",
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds between polls when no wake-up arrives.",
)
@click.option(
    "--connections",
    type=click.IntRange(min=1),
    help="Database connections at most, besides the wake-up channel's [default: 2].",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(1, 65535),
    help="Serve this worker's Prometheus metrics over HTTP on this port (needs the metrics extra).",
)
@click.option(
    "--metrics-host",
    default="127.0.0.1",
    show_default=True,
    help="The address --metrics-port listens on.",
)
@retention_options
@election_options
@log_options("info logs a line per job (started, succeeded, failed, dead, cancelled).")
@click.pass_obj
def worker(
    loader: AppLoader,
    *,
    app_path: str | None,
    queues: tuple[str, ...],
    groups: str | None,
    concurrency: int | None,
    executor: str,
    burst: bool,
    max_jobs_per_child: int | None,
    max_child_memory: float | None,
    scheduler: bool,
    lease: float | None,
    shutdown_timeout: float | None,
    poll_interval: float | None,
    connections: int | None,
    metrics_port: int | None,
    metrics_host: str,
    log_level: str,
    log_format: str,
    retention: dict[JobState, float] | None,
    election: dict[str, Any],
) -> NoReturn:
    """Run jobs until stopped. MODULE:ATTR names the app (or use --app / $OFFLOAD_APP).

    SIGTERM or SIGINT stops claiming and lets running jobs finish (up to
    --shutdown-timeout); a second signal stops at once. With --burst the worker exits
    once no job is due.
    """
    configure(log_level, log_format)
    if retention is not None and not scheduler:
        raise click.UsageError(
            "--keep-succeeded, --keep-cancelled and --keep-dead need --scheduler"
        )
    if app_path:
        loader.path = app_path
    names = [name.strip() for given in queues for name in given.split(",")]
    served = list(dict.fromkeys(check_name("queue", name) for name in names if name))
    if executor == "process" and loader.path:
        from offload.runtime.processes.executor import start_fork_server

        start_fork_server(loader.path)  # it loads the app while this process does too
    given = {
        "max_jobs_per_child": max_jobs_per_child,
        "max_child_memory_mb": max_child_memory,
        "concurrency": concurrency,
        "lease": lease,
        "shutdown_timeout": shutdown_timeout,
        "poll_interval": poll_interval,
        "connections": connections,
    }
    metrics = None if metrics_port is None else _worker_metrics()
    app = loader.app()
    runner = app.worker(
        queues=served,
        groups=None if groups is None else [g.strip() for g in groups.split(",") if g.strip()],
        executor=executor,
        app_path=loader.path,
        burst=burst,
        scheduler=_embedded(app, scheduler, retention, election) or False,
        observer=metrics,
        **election,
        **{name: value for name, value in given.items() if value is not None},
    )
    server = None
    if metrics is not None and metrics_port is not None:
        from offload.runtime.metrics import MetricsServer

        server = MetricsServer(metrics.registry, metrics_host, metrics_port)
    # This process is offload's alone: keep freed heap so that a claim after an idle moment
    # does not fault SQLite's page cache back in (about 0.3 ms of start latency).
    keep_freed_memory()
    try:
        code = runner.run()
    finally:
        if server is not None:
            server.close()
    sys.exit(code)


def _embedded(
    app: App,
    scheduler: bool,
    retention: dict[JobState, float] | None,
    election: dict[str, Any],
) -> Scheduler | None:
    """The scheduler `--scheduler` runs in the worker, with the worker's election options."""
    if not scheduler:
        return None
    options: dict[str, Any] = dict(election)
    if retention is not None:
        options["retention"] = retention
    return app.scheduler(**options)


def _worker_metrics() -> WorkerMetrics:
    """The worker's metrics, or a clear error naming the extra they need."""
    try:
        from offload.runtime.metrics import WorkerMetrics
    except ModuleNotFoundError as exc:
        raise ExtraMissing.of("--metrics-port", "metrics", exc) from None
    return WorkerMetrics()


@click.command()
@click.option("--json", is_flag=True, help="Print the workers as JSON.")
@click.pass_obj
def workers(loader: AppLoader, json: bool) -> None:
    """List registered workers and their last heartbeat.

    Then who holds each maintenance duty (rescue, upkeep), and in which term."""
    app = loader.app()
    found = app.worker_statuses()
    if json:
        print_json([info.to_json() for info in found])
        return
    if found:
        console.print(_workers_table(found))
    else:
        click.echo("no workers registered")
    for lease in app.duties():  # a scheduler may hold one with no worker running
        holder = f"{lease.holder}, term {lease.term}" if lease.remaining > 0 else "nobody now"
        click.echo(f"{lease.name} duty: {holder}")


def _workers_table(found: list[WorkerStatus]) -> Table:
    out = new_table()
    columns = ("id", "host", "pid", "queues", "concurrency", "started", "last heartbeat", "status")
    for name in columns:
        out.add_column(name, justify="right" if name in ("pid", "concurrency") else "left")
    for info in found:
        out.add_row(
            info.id,
            info.host,
            str(info.pid),
            ",".join(info.queues),
            str(info.concurrency),
            when(info.started_at),
            f"{when(info.heartbeat_at)} ({info.silent_for:.0f}s ago)",
            "lost" if info.lost else "alive",
        )
    return out
