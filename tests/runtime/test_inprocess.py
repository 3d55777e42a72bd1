"""Timeouts of jobs run inside the worker process (thread and asyncio executors), on both
backends: the executor's own limit is a JobTimeout, a task's own TimeoutError is its error."""

from __future__ import annotations

import asyncio
import select
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import offload
from offload.backends.params import ClaimParams
from offload.core.errors import ConfigurationError
from offload.core.states import JobState
from offload.runtime import executor as executors
from offload.runtime.executor import PIPELINE_DEPTH, Event, Finished
from offload.runtime.inprocess import PIPELINED_SLOTS, AsyncExecutor, ThreadExecutor


def run_burst(app: offload.App) -> None:
    """Run a thread worker (async tasks go to its asyncio executor) until nothing is due."""
    worker = app.worker(executor="thread", burst=True, install_signals=False, concurrency=2)
    assert worker.run() == 0


def test_an_async_task_s_own_timeout_is_reported_as_its_error_with_traceback(
    app: offload.App,
) -> None:
    @app.task(name="own_wait_for", max_attempts=1)
    async def own_wait_for() -> None:
        await asyncio.wait_for(asyncio.sleep(30), 0.01)

    @app.task(name="own_wait_for_under_limit", max_attempts=1, timeout=60)
    async def own_wait_for_under_limit() -> None:
        await asyncio.wait_for(asyncio.sleep(30), 0.01)

    handles = [own_wait_for.enqueue(), own_wait_for_under_limit.enqueue()]
    run_burst(app)
    for handle, name in zip(handles, ("own_wait_for", "own_wait_for_under_limit"), strict=True):
        job = handle.job()
        assert job.state is JobState.DEAD, job
        (error,) = job.errors
        assert error["type"] == "TimeoutError", error
        assert error["traceback"], error
        assert f"in {name}" in error["traceback"], error["traceback"]
        assert "wait_for" in error["traceback"], error["traceback"]


def test_an_async_task_over_its_timeout_fails_with_job_timeout(app: offload.App) -> None:
    @app.task(name="slow_async", max_attempts=1, timeout=0.2)
    async def slow_async() -> None:
        await asyncio.sleep(30)

    handle = slow_async.enqueue()
    run_burst(app)
    job = handle.job()
    assert job.state is JobState.DEAD, job
    (error,) = job.errors
    assert error["type"] == "JobTimeout", error
    assert error["message"] == "exceeded timeout=0.2s", error


# -- the thread executor enforces `timeout` ----------------------------------------------


def events_until(executor: ThreadExecutor | AsyncExecutor, done: object, what: str) -> list[Event]:
    """Wait on the executor and poll it, as the worker loop does, until `done(events)`."""
    assert callable(done)
    events: list[Event] = []
    deadline = time.monotonic() + 20
    while not done(events):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        select.select(executor.waitables(), [], [], 0.05)
        events += executor.poll()
    return events


def test_a_thread_job_over_its_timeout_is_reported_at_the_deadline_and_keeps_its_slot(
    app: offload.App,
) -> None:
    """Threads cannot be killed: the timeout is reported at the deadline, the thread is told
    to stop (cooperatively), and its slot stays taken until the thread really returns."""
    release = threading.Event()
    told_to_stop = threading.Event()

    @app.task(name="stubborn", timeout=0.2, max_attempts=1)
    def stubborn() -> str:
        release.wait(30)  # ignores the request to stop until the test releases it
        if offload.current_job().cancelled:
            told_to_stop.set()
        return "late"

    @app.task(name="quick")
    def quick() -> str:
        return "quick"

    stubborn.enqueue()
    (job,) = app.backend.claims.claim(ClaimParams("w1", "default", 1, 30.0))
    executor = ThreadExecutor(app.registry, 1)
    try:
        executor.submit([job])
        # The deadline counts from the job's start, in its thread: shortly after submit.
        events_until(executor, lambda _: executor.next_deadline() is not None, "its start")
        (timed_out,) = events_until(executor, bool, "the timeout to be reported")
        assert isinstance(timed_out, Finished)
        assert timed_out.job.id == job.id
        assert not timed_out.ok and not timed_out.cancelled and not timed_out.permanent
        assert timed_out.error == {
            "type": "JobTimeout",
            "message": "exceeded timeout=0.2s",
            "traceback": None,
        }
        assert executor.running() == []  # its outcome is recorded: no lease to renew
        assert executor.free() == 0  # but its thread still runs in the only slot
        assert executor.next_deadline() is None
        release.set()
        events_until(executor, lambda _: executor.free() == 1, "the slot to be given back")
        assert told_to_stop.is_set()
        assert executor.poll() == []  # the late outcome is dropped: the timeout stands
        quick.enqueue()
        (second,) = app.backend.claims.claim(ClaimParams("w1", "default", 1, 30.0))
        executor.submit([second])
        (done,) = events_until(executor, bool, "the next job")
        assert isinstance(done, Finished)
        assert (done.job.id, done.ok, done.result) == (second.id, True, '"quick"')
    finally:
        release.set()
        executor.close()


def test_a_thread_task_over_its_timeout_fails_with_job_timeout_and_is_told_to_stop(
    app: offload.App,
) -> None:
    stopped = threading.Event()

    @app.task(name="polite", executor="thread", timeout=0.3, max_attempts=1)
    def polite() -> str:
        job = offload.current_job()
        end = time.monotonic() + 10
        while time.monotonic() < end:
            if job.cancelled:
                stopped.set()
            job.raise_if_cancelled()
            time.sleep(0.01)
        return "ran to the end"

    @app.task(name="after", executor="thread")
    def after() -> str:
        return "after"

    first, second = polite.enqueue(), after.enqueue()
    worker = app.worker(executor="thread", burst=True, install_signals=False, concurrency=1)
    assert worker.run() == 0
    job = first.job()
    assert job.state is JobState.DEAD, job
    (error,) = job.errors
    assert (error["type"], error["message"]) == ("JobTimeout", "exceeded timeout=0.3s"), error
    assert stopped.wait(10), "the thread was not told to stop"
    assert second.result(timeout=10) == "after"


@pytest.fixture
def declaring_app(tmp_path: Path) -> Iterator[offload.App]:
    """An App to declare tasks on (declarations touch no database)."""
    application = offload.App(f"sqlite:///{tmp_path / 'jobs.db'}")
    yield application
    application.close()


@pytest.mark.parametrize("executor", ["thread", "async"])
@pytest.mark.parametrize("limit", ["cpu_seconds", "memory_mb"])
def test_process_only_limits_are_refused_for_in_process_executors(
    declaring_app: offload.App, executor: str, limit: str
) -> None:
    app = declaring_app
    options: dict[str, Any] = {limit: 10}
    with pytest.raises(ConfigurationError, match=f"{limit}.*executor='process'"):
        app.task(name="limited", executor=executor, **options)
    assert "limited" not in app.registry


@pytest.mark.parametrize("limit", ["cpu_seconds", "memory_mb"])
def test_process_only_limits_on_an_async_task_need_the_process_executor(
    declaring_app: offload.App, limit: str
) -> None:
    """An `async def` task runs on the asyncio executor unless it asks for processes."""
    app = declaring_app
    options: dict[str, Any] = {limit: 10}
    with pytest.raises(ConfigurationError, match=f"{limit}.*executor='process'"):

        @app.task(name="limited_async", **options)
        async def limited_async() -> None:
            return None

    assert "limited_async" not in app.registry

    @app.task(name="limited_async", executor="process", **options)
    async def in_a_child() -> None:
        return None

    assert app.registry.get("limited_async").options.executor == "process"


# -- short jobs queue behind running ones, so their ends are recorded many at a time ------


@pytest.fixture
def short_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every run counts as short (raising the bar, rather than timing runs)."""
    monkeypatch.setattr(executors, "SHORT_RUN", 3600.0)


def claim_all(app: offload.App, n: int) -> list[Any]:
    return app.backend.claims.claim(ClaimParams("w1", "default", n, 30.0))


def test_in_process_executors_hold_queued_jobs_only_while_runs_are_short(
    app: offload.App, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads, loop = ThreadExecutor(app.registry, 2), AsyncExecutor(app.registry, 100)
    try:
        assert (threads.capacity(), loop.capacity()) == (2, 100)  # runs not known short
        monkeypatch.setattr(executors, "SHORT_RUN", 3600.0)
        queued = PIPELINE_DEPTH - 1
        assert threads.capacity() == 2 + queued * 2
        assert loop.capacity() == 100 + queued * PIPELINED_SLOTS  # not 32 x 100 claimed ahead
    finally:
        threads.close()
        loop.close()


def test_short_thread_jobs_queued_behind_each_other_all_run_once(
    app: offload.App, short_runs: None
) -> None:
    ran: list[int] = []

    @app.task(name="note")
    def note(i: int) -> int:
        ran.append(i)
        return i

    note.enqueue_many([(i,) for i in range(40)])
    jobs = claim_all(app, 40)
    executor = ThreadExecutor(app.registry, 2)
    try:
        assert executor.free() >= 40
        executor.submit(jobs)
        ends = events_until(executor, lambda ev: len(ev) == 40, "40 ends")
        assert sorted(e.job.id for e in ends) == sorted(j.id for j in jobs)
        assert all(isinstance(e, Finished) and e.ok for e in ends)
        assert sorted(ran) == list(range(40))
        assert executor.running() == [] and executor.free() == executor.capacity()
    finally:
        executor.close()


def test_a_queued_thread_job_cancelled_before_its_turn_never_runs(
    app: offload.App, short_runs: None
) -> None:
    release = threading.Event()
    ran: list[str] = []

    @app.task(name="blocker")
    def blocker() -> None:
        release.wait(30)

    @app.task(name="behind")
    def behind() -> None:
        ran.append("behind")

    blocker.enqueue()
    behind.enqueue()
    first, second = sorted(claim_all(app, 2), key=lambda j: j.id)
    executor = ThreadExecutor(app.registry, 1)
    try:
        executor.submit([first, second])
        executor.cancel(second.id)
        release.set()
        ends = events_until(executor, lambda ev: len(ev) == 2, "both ends")
        by_id = {e.job.id: e for e in ends if isinstance(e, Finished)}
        assert by_id[first.id].ok
        cancelled = by_id[second.id]
        assert cancelled.cancelled and not cancelled.ok
        assert cancelled.error is not None
        assert cancelled.error["message"] == "cancelled before it started"
        assert ran == []
    finally:
        release.set()
        executor.close()


def test_a_queued_thread_job_s_timeout_counts_from_its_start_not_its_wait(
    app: offload.App, short_runs: None
) -> None:
    @app.task(name="slow_head")
    def slow_head() -> str:
        time.sleep(0.6)
        return "head"

    @app.task(name="quick_with_limit", timeout=0.4)
    def quick_with_limit() -> str:
        time.sleep(0.05)
        return "quick"

    slow_head.enqueue()
    quick_with_limit.enqueue()
    first, second = sorted(claim_all(app, 2), key=lambda j: j.id)
    executor = ThreadExecutor(app.registry, 1)
    try:
        executor.submit([first, second])
        ends = events_until(executor, lambda ev: len(ev) == 2, "both ends")
        results = {e.job.id: (e.ok, e.result) for e in ends if isinstance(e, Finished)}
        # It waited 0.6 s behind the head, longer than its timeout: it still ran and passed.
        assert results == {first.id: (True, '"head"'), second.id: (True, '"quick"')}
    finally:
        executor.close()


def test_the_async_executor_runs_at_most_its_concurrency_while_others_wait_their_turn(
    app: offload.App, short_runs: None
) -> None:
    now_running = [0]
    most = [0]
    gate = threading.Event()

    @app.task(name="overlap")
    async def overlap(i: int) -> int:
        now_running[0] += 1  # one event loop: no lock needed
        most[0] = max(most[0], now_running[0])
        await asyncio.sleep(0.01)
        if i == 0:
            await asyncio.to_thread(gate.wait, 30)
        now_running[0] -= 1
        return i

    overlap.enqueue_many([(i,) for i in range(12)])
    jobs = sorted(claim_all(app, 12), key=lambda j: j.id)
    executor = AsyncExecutor(app.registry, 3)
    try:
        assert executor.free() >= 12
        executor.submit(jobs)
        executor.cancel(jobs[-1].id)  # still waiting for a turn: it never starts
        gate.set()
        ends = events_until(executor, lambda ev: len(ev) == 12, "12 ends")
        finished = {e.job.id: e for e in ends if isinstance(e, Finished)}
        last = finished[jobs[-1].id]
        assert last.cancelled and last.error is not None
        assert last.error["message"] == "cancelled before it started"
        assert all(finished[j.id].ok for j in jobs[:-1])
        assert most[0] == 3
    finally:
        gate.set()
        executor.close()


def test_two_runs_of_one_job_are_held_apart(app: offload.App) -> None:
    """A job rescued and claimed again by this worker while its older run still holds a
    thread: each run's end is reported with its own attempt, none dropped as abandoned."""
    from dataclasses import replace

    release = threading.Event()

    @app.task(name="twice")
    def twice() -> str:
        if offload.current_job().attempt == 1:
            release.wait(30)
            return "old"
        return "new"

    twice.enqueue()
    (old,) = claim_all(app, 1)
    new = replace(old, attempt=old.attempt + 1)
    executor = ThreadExecutor(app.registry, 2)
    try:
        executor.submit([old, new])
        (first,) = events_until(executor, bool, "the new run's end")
        assert isinstance(first, Finished) and (first.job.attempt, first.result) == (2, '"new"')
        release.set()
        (second,) = events_until(executor, bool, "the old run's end")
        assert isinstance(second, Finished) and (second.job.attempt, second.result) == (1, '"old"')
        assert executor.running() == []
    finally:
        release.set()
        executor.close()
