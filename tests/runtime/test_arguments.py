"""A job whose arguments its function cannot take goes dead at once at a real worker, in every
executor; a TypeError raised inside a task's body is an ordinary failure, retried."""

from __future__ import annotations

from typing import Any

import pytest

import offload
from offload.core.states import JobState
from tests.runtime.conftest import StartWorker


@pytest.mark.parametrize(
    ("executor", "task", "args"),
    [
        ("process", "add", [1, 2, 3]),
        ("thread", "add", [1, 2, 3]),
        ("async", "async_sleep", [0.01, "extra"]),
    ],
)
def test_a_job_its_function_cannot_take_goes_dead_after_one_attempt(
    db_url: str, start_worker: StartWorker, executor: str, task: str, args: list[Any]
) -> None:
    """The producer's `task` takes other arguments than the worker's (an older deploy, say):
    the worker can never run the job, so it records the mismatch and stops there."""
    producer = offload.App(db_url)
    producer.migrate()

    def other_version(*_args: Any) -> None: ...

    producer.task(name=task, max_attempts=5)(other_version)
    handle = producer.enqueue(task, args)
    start_worker(executor=executor, concurrency=1)
    job = handle.wait(timeout=60)
    producer.close()
    assert job.state is JobState.DEAD
    assert job.attempt == 1
    assert len(job.errors) == 1
    error = job.errors[0]
    assert error["type"] == "offload.core.errors.ArgumentsMismatch"
    assert error["message"].startswith(f"arguments do not match task '{task}': ")
    assert "too many positional arguments" in error["message"]
    assert error["traceback"] is None


@pytest.mark.parametrize("executor", ["process", "thread"])
def test_a_type_error_inside_the_task_is_retried(
    basic_app: offload.App, start_worker: StartWorker, executor: str
) -> None:
    handle = basic_app.enqueue("type_error", [1])
    start_worker(executor=executor, concurrency=1)
    job = handle.wait(timeout=60)
    assert job.state is JobState.DEAD
    assert job.attempt == 2  # its retry policy's two attempts: it was retried
    assert [error["type"] for error in job.errors] == ["TypeError", "TypeError"]
    assert "unsupported operand" in job.errors[0]["message"]
    assert "in type_error" in (job.errors[0]["traceback"] or "")
