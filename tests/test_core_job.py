"""The one place a job is built (`TaskDef.spec`)."""

from __future__ import annotations

from offload.core.job import JobSpec
from offload.core.options import EnqueueOptions, RetryPolicy, TaskOptions
from offload.core.task import TaskDef


def _task(**options: object) -> TaskDef:
    return TaskDef("t", lambda: None, TaskOptions(**options))  # type: ignore[arg-type]


def test_a_spec_takes_the_task_defaults() -> None:
    spec = _task(queue="q", priority=3, retry=RetryPolicy(max_attempts=7)).spec(EnqueueOptions())
    assert spec == JobSpec(task="t", queue="q", priority=3, max_attempts=7)


def test_per_call_options_override_the_defaults() -> None:
    over = EnqueueOptions(
        queue="urgent", priority=0, delay=1.5, run_at=None, max_attempts=2, meta={"k": [1]}
    )
    spec = _task(queue="q", priority=3).spec(over)
    assert spec == JobSpec(
        task="t", queue="urgent", priority=0, max_attempts=2, delay=1.5, meta='{"k":[1]}'
    )
    exact = _task().spec(EnqueueOptions(run_at=1_700_000_000.25))
    assert (exact.run_at, exact.delay) == (1_700_000_000.25, 0.0)
