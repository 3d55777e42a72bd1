"""The one place a job is built (`TaskDef.spec`)."""

from __future__ import annotations

from datetime import UTC, datetime

from offload.core.job import Job, JobSpec
from offload.core.options import EnqueueOptions, RetryPolicy, TaskOptions
from offload.core.states import JobState
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


def test_a_job_reads_back_from_its_dict_view() -> None:
    at = datetime(2026, 11, 28, 9, 30, 1, 250000, tzinfo=UTC)
    job = Job(
        id=7,
        task="t",
        queue="q",
        args=[1, {"a": None}],
        kwargs={"k": [True]},
        priority=-3,
        state=JobState.DEAD,
        attempt=2,
        max_attempts=2,
        run_at=at,
        enqueued_at=at,
        started_at=at,
        finished_at=None,
        lease_until=None,
        worker="w",
        result=None,
        errors=[{"type": "ValueError", "message": "boom"}],
        idempotency_key="key",
        progress={"fraction": 0.5, "message": None},
    )
    assert Job.from_dict(job.to_dict()) == job
    newer = {**job.to_dict(), "field_of_a_newer_server": 1}  # ignored, not refused
    assert Job.from_dict(newer) == job
