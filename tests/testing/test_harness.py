"""`offload.testing.harness`: manual and inline modes on real storage, on both backends."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

import offload
from offload.testing import Harness, InlineTransaction, harness
from tests.conformance.helpers import is_sqlite, sqlite_path


@dataclass
class Jobs:
    """An app with a few tasks, as an application module would declare them."""

    app: offload.App
    add: offload.Task[[int, int], int]
    fan_out: offload.Task[[int], int]
    record: offload.Task[[str], str]
    boom: offload.Task[[], None]
    wait: offload.AsyncTask[[float], float]


def make_jobs(url: str) -> Jobs:
    app = offload.App(url)
    seen: list[str] = []

    @app.task(name="add")
    def add(a: int, b: int) -> int:
        return a + b

    @app.task(name="record", queue="other")
    def record(text: str) -> str:
        seen.append(text)
        return text.upper()

    @app.task(name="fan_out")
    def fan_out(n: int) -> int:
        for i in range(n):
            record.enqueue(f"item {i}")
        return n

    @app.task(name="boom", max_attempts=1)
    def boom() -> None:
        raise ValueError("it went boom")

    @app.task(name="wait")
    async def wait(seconds: float) -> float:
        import asyncio

        await asyncio.sleep(seconds)
        return seconds

    return Jobs(app, add, fan_out, record, boom, wait)


@pytest.fixture
def jobs(tmp_path: Path) -> Iterator[Jobs]:
    made = make_jobs(f"sqlite:///{tmp_path / 'production.db'}")
    yield made
    made.app.close()


@pytest.fixture
def manual(jobs: Jobs, db_url: str) -> Iterator[Harness]:
    with harness(jobs.app, url=db_url) as under_test:
        yield under_test


def test_manual_mode_stores_jobs_until_drained(jobs: Jobs, manual: Harness) -> None:
    handle = jobs.add.enqueue(1, 2)
    assert handle.status() is offload.JobState.AVAILABLE
    job = manual.assert_enqueued(jobs.add, args=[1, 2], queue="default", priority=0)
    assert job.id == handle.id
    manual.refute_enqueued(jobs.add, args=[2, 1])
    drained = manual.drain()
    assert (drained.succeeded, drained.failed, drained.ran) == (1, 0, 1)
    assert handle.result(timeout=1) == 3
    manual.refute_enqueued(jobs.add)
    assert manual.all_enqueued() == []


def test_drain_runs_the_jobs_that_jobs_enqueue_in_any_queue(jobs: Jobs, manual: Harness) -> None:
    jobs.fan_out.enqueue(3)
    assert [j.task for j in manual.all_enqueued()] == ["fan_out"]
    assert manual.drain().succeeded == 4
    assert manual.all_enqueued() == []
    results = [j.result for j in jobs.app.jobs(task="record")]
    assert sorted(results) == ["ITEM 0", "ITEM 1", "ITEM 2"]


def test_drain_of_one_queue_leaves_the_others(jobs: Jobs, manual: Harness) -> None:
    jobs.fan_out.enqueue(2)
    assert manual.drain("default").succeeded == 1
    assert len(manual.all_enqueued(jobs.record, queue="other")) == 2
    assert manual.drain("other").succeeded == 2
    assert manual.all_enqueued() == []


def test_assertions_see_every_job_of_the_test_past_one_page(jobs: Jobs, manual: Harness) -> None:
    """Two pages and more of jobs: the oldest is found, and counted."""
    jobs.add.enqueue(-1, -1)  # the oldest, under 2,100 newer ones
    jobs.add.enqueue_many((i, i) for i in range(2100))
    jobs.record.enqueue("newest")
    assert manual.assert_enqueued(jobs.add, args=[-1, -1]).id == 1
    enqueued = manual.all_enqueued(jobs.add)
    assert len(enqueued) == 2101
    assert [job.args for job in enqueued[:2]] == [[-1, -1], [0, 0]]  # oldest first
    assert len(manual.all_enqueued()) == 2102
    manual.refute_enqueued(jobs.add, args=[-2, -2])


def test_a_job_retrying_after_a_failed_run_is_still_enqueued(jobs: Jobs, manual: Harness) -> None:
    flaky = jobs.app.task(
        name="flaky", retry=offload.RetryPolicy(max_attempts=2, base=3600, max_delay=3600)
    )(_fail)
    flaky.enqueue("once")
    assert manual.drain(raise_errors=False).failed == 1
    job = manual.assert_enqueued(flaky, args=["once"])
    assert job.state is offload.JobState.RETRYING


def _fail(text: str) -> None:
    raise RuntimeError(text)


def test_delayed_jobs_stay_enqueued(jobs: Jobs, manual: Harness) -> None:
    jobs.add.options(delay=3600).enqueue(1, 1)
    assert manual.drain().ran == 0
    assert manual.assert_enqueued(jobs.add).state is offload.JobState.SCHEDULED


def test_a_failed_run_raises_after_the_drain_with_its_traceback(
    jobs: Jobs, manual: Harness
) -> None:
    jobs.boom.enqueue()
    jobs.add.enqueue(2, 2)
    with pytest.raises(offload.JobFailed, match="is dead: ValueError: it went boom") as info:
        manual.drain()
    assert "it went boom" in "".join(info.value.__notes__)
    assert manual.all_enqueued() == []  # the other job ran too
    jobs.boom.enqueue()
    drained = manual.drain(raise_errors=False)
    assert drained.failed == 1
    assert drained.failures[0][1]["type"] == "ValueError"


def test_async_tasks_run_on_the_workers_loop(jobs: Jobs, manual: Harness) -> None:
    handle = jobs.wait.enqueue(0.01)
    manual.drain()
    assert handle.result(timeout=1) == 0.01
    assert manual.perform_job(jobs.wait, 0.0) == 0.0


def test_assert_enqueued_names_what_it_found(jobs: Jobs, manual: Harness) -> None:
    jobs.add.enqueue(1, 2)
    jobs.add.options(queue="slow").enqueue(5, 6)
    with pytest.raises(AssertionError) as info:
        manual.assert_enqueued(jobs.add, args=[1, 3])
    message = str(info.value)
    assert "no enqueued job of task 'add' with args [1, 3]" in message
    assert "args [1, 2], kwargs {}, queue 'default'" in message
    assert "args [5, 6], kwargs {}, queue 'slow'" in message
    with pytest.raises(AssertionError, match="no job of task 'record' is enqueued"):
        manual.assert_enqueued(jobs.record)
    with pytest.raises(AssertionError, match=r"expected no enqueued job of task 'add'.*found 1"):
        manual.refute_enqueued("add", queue="slow")


def test_arguments_compare_as_json(jobs: Jobs, manual: Harness) -> None:
    jobs.record.enqueue("x")
    manual.assert_enqueued("record", args=("x",), kwargs={})
    with pytest.raises(offload.UnknownTask, match="did you mean 'record'"):
        manual.assert_enqueued("recrod")


def test_perform_job_goes_through_json(jobs: Jobs, manual: Harness) -> None:
    assert manual.perform_job(jobs.add, 2, 3) == 5
    assert manual.perform_job("record", "hi") == "HI"
    with pytest.raises(offload.SerializationError, match="argument 0"):
        manual.perform_job(jobs.add, {1, 2}, 3)  # type: ignore[call-overload]
    with pytest.raises(offload.ArgumentsMismatch):
        manual.perform_job(jobs.add, 1)  # type: ignore[call-overload]
    with pytest.raises(ValueError, match="it went boom"):
        manual.perform_job(jobs.boom)
    assert manual.all_enqueued() == []  # stores nothing


def test_a_non_json_argument_is_refused_at_enqueue(jobs: Jobs, manual: Harness) -> None:
    with pytest.raises(offload.SerializationError, match=r"argument 0 is a builtins\.set"):
        jobs.add.enqueue({1}, 2)  # type: ignore[arg-type]
    assert manual.all_enqueued() == []


def test_inline_mode_runs_each_enqueue(jobs: Jobs, db_url: str) -> None:
    with harness(jobs.app, mode="inline", url=db_url) as inline:
        handle = jobs.fan_out.enqueue(2)
        assert handle.status() is offload.JobState.SUCCEEDED
        assert handle.result() == 2
        assert inline.all_enqueued() == []
        assert sorted(j.result for j in jobs.app.jobs(task="record")) == ["ITEM 0", "ITEM 1"]
        with pytest.raises(offload.JobFailed, match="it went boom"):
            jobs.boom.enqueue()
        later = jobs.add.options(delay=60).enqueue(1, 1)
        assert later.status() is offload.JobState.SCHEDULED


@contextmanager
def caller_connection(url: str) -> Iterator[Any]:
    """The application's own connection to the harness's database, in a transaction."""
    if is_sqlite(url):
        conn = sqlite3.connect(sqlite_path(url))
        try:
            yield conn
        finally:
            conn.close()
    else:
        with psycopg.connect(url) as pg:
            yield pg


def test_inline_mode_refuses_an_enqueue_on_the_callers_connection(jobs: Jobs, db_url: str) -> None:
    """The job would exist at the caller's commit only: inline mode could not run it, and
    a result() would wait for ever. Refused, named, nothing stored; manual mode takes it."""
    with harness(jobs.app, mode="inline", url=db_url) as inline:
        with caller_connection(db_url) as conn:
            with pytest.raises(InlineTransaction, match=r"'add' enqueued with conn=") as info:
                jobs.add.options(conn=conn).enqueue(1, 2)
            assert info.value.task == "add"
            assert isinstance(info.value, offload.ConfigurationError)
            with pytest.raises(InlineTransaction, match="mode='manual'"):
                offload.chain(jobs.add.s(1, 2), jobs.add.s(3)).enqueue(conn=conn)  # type: ignore[call-arg]
            conn.commit()
        assert jobs.app.jobs() == []
        assert inline.all_enqueued() == []
        assert jobs.add.enqueue(2, 3).result(timeout=5) == 5  # without conn=: run inline
    with harness(jobs.app, url=db_url) as manual, caller_connection(db_url) as conn:
        handle = jobs.add.options(conn=conn).enqueue(1, 2)
        conn.commit()
        assert manual.drain().succeeded == 1
        assert handle.result(timeout=5) == 3


def test_inline_mode_with_enqueue_async(jobs: Jobs) -> None:
    import asyncio

    async def main() -> int:
        handle = await jobs.add.enqueue_async(20, 22)
        return await handle.result_async(timeout=1)

    with harness(jobs.app, mode="inline"):
        assert asyncio.run(main()) == 42


def test_the_apps_own_storage_is_put_back(jobs: Jobs) -> None:
    url, backend = jobs.app.url, jobs.app.backend
    with harness(jobs.app) as under_test:
        assert jobs.app.url != url
        jobs.add.enqueue(1, 1)
        assert len(under_test.all_enqueued()) == 1
        scratch = Path(jobs.app.url.removeprefix("sqlite:///")).parent
    assert (jobs.app.url, jobs.app.backend) == (url, backend)
    assert not scratch.exists()
    assert "_insert" not in vars(jobs.app)
    assert jobs.app.jobs() == []  # nothing reached the application's database


def test_an_unknown_mode_is_named(jobs: Jobs) -> None:
    with (
        pytest.raises(offload.ConfigurationError, match=r"unknown testing mode 'inlin'.*'inline'"),
        harness(jobs.app, mode="inlin"),  # type: ignore[arg-type]
    ):
        pass
