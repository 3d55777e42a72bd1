"""`offload demo`: a mixed workload through a real worker, on a throwaway SQLite file.

Enqueues thumbnails (CPU), e-mails (I/O, flaky, retried), posts that fan out to followers'
feeds and a few delayed reminders, then runs one worker with child processes in a thread of
this process, shows live counts per state, and ends with throughput and latency figures.
"""

from __future__ import annotations

import math
import os
import random
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from offload.app import App, call
from offload.core.errors import ConfigurationError, OffloadError
from offload.core.job import Job
from offload.core.states import JobState
from offload.runtime.worker import Worker

APP_PATH = "offload.demo.app:app"
URL_VARIABLE = "OFFLOAD_DEMO_URL"
REFRESH = 0.2
#: Give up (exit 1) if the workload has not finished by then: a demo must never hang.
TIME_LIMIT = 300.0
PAGE = 1000

console = Console(markup=False, highlight=False, soft_wrap=True)


@dataclass(frozen=True, slots=True)
class Workload:
    """How many jobs of each kind; `total` counts the fan-out children too."""

    thumbnails: int
    emails: int
    reminders: int
    posts: int
    followers_per_post: int

    @classmethod
    def of_size(cls, total: int) -> Workload:
        """Split `total` jobs: ~43% thumbnails, 30% e-mails, 25% feed deliveries, 2% rest."""
        reminders = max(2, total // 100)
        posts = max(1, total // 100)
        followers = max(1, total // 4 // posts)
        emails = total * 3 // 10
        thumbnails = total - reminders - posts - posts * followers - emails
        return cls(thumbnails, emails, reminders, posts, followers)

    @property
    def total(self) -> int:
        """Every job the workload ends up with, fan-out children included."""
        fan_out = self.posts * (1 + self.followers_per_post)
        return self.thumbnails + self.emails + self.reminders + fan_out


def default_concurrency() -> int:
    """Four processes per CPU (at most 16): the e-mail jobs mostly wait on I/O."""
    return min(4 * (os.cpu_count() or 1), 16)


def run_demo(*, jobs: int, concurrency: int | None = None, keep: Path | None = None) -> None:
    """Run the demo end to end.

    Raises OffloadError when a job died of anything but the mail server's designed failures.
    """
    if keep is not None and keep.exists():
        raise ConfigurationError(f"{keep} already exists: --keep needs a new file name")
    workdir = Path(tempfile.mkdtemp(prefix="offload-demo-"))
    try:
        path = (keep if keep is not None else workdir / "demo.db").resolve()
        url = f"sqlite:///{path}"
        # Before the import: the app module reads it, here and in the worker's children.
        os.environ[URL_VARIABLE] = url
        from offload.demo import app as demo

        if demo.app.url != url:
            raise ConfigurationError(f"{APP_PATH} was imported before the demo set its database")
        try:
            finished = _run(demo.app, Workload.of_size(jobs), concurrency or default_concurrency())
        finally:
            demo.app.close()
        if keep is not None:
            console.print(f"database kept in {path}; look inside with")
            console.print(f"  OFFLOAD_URL={url} offload --app {APP_PATH} jobs")
        _check(finished, expected_failure=demo.MailServerBusy)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _run(app: App, workload: Workload, concurrency: int) -> list[Job]:
    """Enqueue the workload, work it off with one worker, print the summary; return the jobs."""
    from offload.demo.app import QUEUES

    app.migrate()
    began = time.monotonic()
    _enqueue(workload, random.Random(7))
    children = workload.posts * workload.followers_per_post
    console.print(
        f"enqueued {workload.total - children:,} jobs in {time.monotonic() - began:.2f} s "
        f"({children:,} more will come from fan-out)"
    )
    console.print(f"starting a worker with {concurrency} processes on {', '.join(QUEUES)}")
    worker = app.worker(
        queues=QUEUES,
        concurrency=concurrency,
        executor="process",
        app_path=APP_PATH,
        install_signals=False,
    )
    thread = WorkerThread(worker)
    started = time.monotonic()
    thread.start()
    try:
        _watch(app, workload.total, thread, started)
        wall = time.monotonic() - started
    finally:
        worker.stop()
        thread.join()
    if thread.error is not None:
        raise thread.error
    console.print()
    console.print(Text("summary", style="bold"))
    finished = list(_all_jobs(app))
    console.print(_summary(finished, wall))
    return finished


def _check(jobs: list[Job], expected_failure: type[Exception]) -> None:
    """Raise unless every dead job died of `expected_failure` (the flaky mail server)."""
    expected = f"{expected_failure.__module__}.{expected_failure.__qualname__}"
    unexpected = [
        job
        for job in jobs
        if job.state is JobState.DEAD and (job.last_error or {}).get("type") != expected
    ]
    if unexpected:
        error = unexpected[0].last_error or {}
        raise OffloadError(
            f"{len(unexpected):,} of {len(jobs):,} jobs died unexpectedly; job {unexpected[0].id} "
            f"({unexpected[0].task}): {error.get('type')}: {error.get('message')}"
        )


def _enqueue(workload: Workload, rng: random.Random) -> None:
    """Store the workload: one commit per kind, and one per delayed reminder."""
    from offload.demo.app import publish, send_email, thumbnail

    thumbnail.enqueue_many(
        call(photo, rng.randrange(80, 129, 16)) for photo in range(workload.thumbnails)
    )
    templates = ("welcome", "receipt", "password-reset", "new-follower")
    send_email.enqueue_many(call(user, rng.choice(templates)) for user in range(workload.emails))
    followers = workload.followers_per_post
    publish.enqueue_many(
        call(post, [post * followers + n for n in range(followers)])
        for post in range(workload.posts)
    )
    for user in range(workload.reminders):
        send_email.options(delay=rng.uniform(1.0, 3.0)).enqueue(user, "reminder")


class WorkerThread(threading.Thread):
    """Runs the worker loop (of `offload demo` and `offload dev`); keeps its exception for
    the main thread to re-raise."""

    def __init__(self, worker: Worker, name: str = "offload-demo-worker") -> None:
        super().__init__(name=name, daemon=True)
        self.worker = worker
        self.error: Exception | None = None

    def run(self) -> None:
        try:
            self.worker.run()
        except Exception as exc:
            self.error = exc


def _watch(app: App, expected: int, thread: WorkerThread, started: float) -> None:
    """Show counts per state until no job is left unfinished."""
    with Live(console=console, auto_refresh=False, transient=False) as live:
        while True:
            counts = _per_state(app.queue_counts())
            elapsed = time.monotonic() - started
            live.update(_progress(counts, expected, elapsed), refresh=True)
            if not any(n for state, n in counts.items() if not state.finished):
                return
            if not thread.is_alive():
                raise thread.error or OffloadError("the demo worker stopped before the work did")
            if elapsed > TIME_LIMIT:
                raise OffloadError(f"the demo workload did not finish within {TIME_LIMIT:g} s")
            time.sleep(REFRESH)


def _per_state(counts: dict[str, dict[str, int]]) -> dict[JobState, int]:
    totals = dict.fromkeys(JobState, 0)
    for per_state in counts.values():
        for state, number in per_state.items():
            totals[JobState(state)] += number
    return totals


def _progress(counts: dict[JobState, int], expected: int, elapsed: float) -> Table:
    done = sum(n for state, n in counts.items() if state.finished)
    total = max(sum(counts.values()), expected)
    shown = [s for s in JobState if counts[s] or s in (JobState.RUNNING, JobState.SUCCEEDED)]
    states = Table(box=None, header_style="bold", pad_edge=False)
    for state in shown:
        states.add_column(state.value, justify="right")
    states.add_row(*(f"{counts[state]:,}" for state in shown))
    view = Table.grid(padding=(0, 1))
    view.add_row(Text(f"{done:,} / {total:,} jobs finished in {elapsed:.1f} s", style="bold"))
    view.add_row(ProgressBar(total=total, completed=done, width=50))
    view.add_row(states)
    return view


def _all_jobs(app: App) -> Iterator[Job]:
    """Every job, newest first, a page at a time."""
    before: int | None = None
    while page := app.jobs(before_id=before, limit=PAGE):
        yield from page
        before = page[-1].id


def _summary(jobs: list[Job], wall: float) -> Table:
    """Throughput, queue latency, retries and dead jobs of the finished workload."""
    succeeded = sum(1 for job in jobs if job.state is JobState.SUCCEEDED)
    dead = sum(1 for job in jobs if job.state is JobState.DEAD)
    retries = sum(max(job.attempt - 1, 0) for job in jobs)
    waits = sorted(
        (job.started_at - max(job.enqueued_at, job.run_at)).total_seconds()
        for job in jobs
        if job.attempt == 1 and job.started_at is not None
    )
    out = Table.grid(padding=(0, 2))
    out.add_column(style="bold")
    out.add_column()
    out.add_row("jobs", f"{len(jobs):,} ({succeeded:,} succeeded, {dead:,} dead)")
    out.add_row("wall time", f"{wall:.2f} s")
    out.add_row("throughput", f"{len(jobs) / wall:,.0f} jobs/s")
    if waits:
        p50, p99 = (_percentile(waits, p) * 1000 for p in (50, 99))
        out.add_row("enqueue->start", f"p50 {p50:,.0f} ms, p99 {p99:,.0f} ms")
        note = f"{len(waits):,} first attempts; most jobs were queued up front"
        out.add_row("", Text(note, style="dim"))
    out.add_row("retries", f"{retries:,}")
    out.add_row("dead", f"{dead:,}")
    return out


def _percentile(ordered: list[float], p: float) -> float:
    """Nearest-rank percentile of an ascending, non-empty list."""
    rank = max(1, math.ceil(len(ordered) * p / 100))
    return ordered[rank - 1]
