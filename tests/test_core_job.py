"""The one place a job is built (`TaskDef.spec`), and payload positions in a batch insert."""

from __future__ import annotations

from offload.backends.sql.jobs import _by_position
from offload.core.job import JobSpec, Payload
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


def test_batch_ids_follow_payload_positions_when_keys_were_taken() -> None:
    payloads = [
        Payload(idempotency_key="a"),  # new
        Payload(),  # no key: always new
        Payload(idempotency_key="held"),  # taken before this batch
        Payload(idempotency_key="a"),  # repeated within the batch
        Payload(),
    ]
    # The database returned the inserted rows in any order, with their keys.
    ids = _by_position(payloads, [12, 10, 11], [None, "a", None])
    assert ids == [10, 11, 0, 0, 12]
    assert _by_position(payloads[:2], [5, 4], ["a", None]) == [4, 5]
