"""Group claims of batch tasks: one group per claim, at most `size` jobs, readiness by size
and by wait, other groups and single jobs untouched, order by the group's oldest job."""

from __future__ import annotations

import threading
from datetime import timedelta

from offload.backends.base import Backend
from offload.backends.params import Claimed, ClaimParams, GroupClaimParams
from offload.core.flow import QueuePolicy
from offload.core.job import Job
from offload.core.states import JobState
from tests.conformance.helpers import claim_one, insert, insert_jobs, new_job, wait_db_time_past


def take(
    backend: Backend, size: int, max_wait: float = 0.0, task: str = "batch", worker: str = "w1"
) -> Claimed:
    return backend.claims.take_group(
        GroupClaimParams(worker, "default", task, size, max_wait, 30.0)
    )


def group(backend: Backend, key: str, n: int, task: str = "batch", **options: object) -> list[int]:
    return insert(backend, n, task=task, group_key=key, **options)


def test_a_claim_takes_one_ready_group_up_to_its_size_in_claim_order(backend: Backend) -> None:
    a = group(backend, '"a"', 5, priority=2)
    b = group(backend, '"b"', 3, priority=1)
    first = take(backend, 4)
    assert [job.id for job in first.jobs] == a[:4]
    assert first.wait is None
    for job in first.jobs:
        assert (job.state, job.attempt, job.worker, job.group_key) == (
            JobState.RUNNING,
            1,
            "w1",
            '"a"',
        )
        assert job.lease_until is not None
    # The rest of "a" sorts before "b" (its priority ages it ahead): it goes next, alone.
    assert [job.id for job in take(backend, 4).jobs] == a[4:]
    assert [job.id for job in take(backend, 4).jobs] == b
    assert take(backend, 4).jobs == []


def test_other_groups_and_other_tasks_are_untouched(backend: Backend) -> None:
    a = group(backend, '"a"', 2, priority=1)
    b = group(backend, '"b"', 2)
    other = group(backend, '"a"', 2, task="other-batch", priority=5)
    took = take(backend, 10)
    assert [job.id for job in took.jobs] == a
    for job_id in [*b, *other]:
        job = backend.jobs.get(job_id)
        assert (job.state, job.attempt, job.worker) == (JobState.AVAILABLE, 0, None)


def test_a_group_short_of_its_size_waits_until_its_oldest_has_waited(backend: Backend) -> None:
    ids = group(backend, '"slow"', 2)
    held = take(backend, 3, max_wait=1.5)
    assert held.jobs == []
    assert held.wait is not None and 0 < held.wait <= 1.5
    for job_id in ids:
        assert backend.jobs.get(job_id).state is JobState.AVAILABLE
    oldest = backend.jobs.get(ids[0]).run_at
    wait_db_time_past(backend, oldest + timedelta(seconds=1.5))
    took = take(backend, 3, max_wait=1.5)
    assert [job.id for job in took.jobs] == ids


def test_a_full_group_goes_at_once_while_others_wait(backend: Backend) -> None:
    short = group(backend, '"short"', 2, priority=5)  # sorts first, but is not ready
    full = group(backend, '"full"', 3)
    took = take(backend, 3, max_wait=3600.0)
    assert [job.id for job in took.jobs] == full
    held = take(backend, 3, max_wait=3600.0)
    assert held.jobs == []
    assert held.wait is not None and 3000 < held.wait <= 3600
    assert [backend.jobs.get(i).state for i in short] == [JobState.AVAILABLE] * 2


def test_jobs_not_yet_due_are_not_counted(backend: Backend) -> None:
    due = group(backend, '"g"', 2)
    group(backend, '"g"', 2, delay=3600.0)
    held = take(backend, 3, max_wait=3600.0)
    assert held.jobs == []
    assert [job.id for job in take(backend, 3, max_wait=0.0).jobs] == due


def test_single_claims_never_take_batch_jobs(backend: Backend) -> None:
    group(backend, '"a"', 3, priority=9)
    (single,) = insert(backend, 1, task="single")
    assert claim_one(backend).id == single
    assert backend.claims.claim(ClaimParams("w1", "default", 10, 30.0)) == []
    assert backend.claims.take(ClaimParams("w1", "default", 10, 30.0)).jobs == []
    assert len(take(backend, 10).jobs) == 3


def test_a_paused_queue_gives_no_group(backend: Backend) -> None:
    ids = group(backend, '"a"', 2)
    backend.queues.pause("default", True)
    held = take(backend, 2)
    assert held.jobs == []
    assert held.wait is None  # ready but held: the resume's wake-up frees it, not a timer
    backend.queues.pause("default", False)
    assert [job.id for job in take(backend, 2).jobs] == ids


def test_a_queue_concurrency_limit_counts_each_job_of_a_call(backend: Backend) -> None:
    backend.queues.declare({"default": QueuePolicy(concurrency=3)}, {})
    ids = group(backend, '"a"', 5)
    first = take(backend, 5)
    assert [job.id for job in first.jobs] == ids[:3]
    assert take(backend, 5).jobs == []  # three running: the queue is full


def test_concurrent_group_claims_never_share_a_job(backend: Backend) -> None:
    insert_jobs(
        backend, [new_job(task="batch", args=[i], group_key=f'"g{i % 4}"') for i in range(40)]
    )
    calls: list[list[Job]] = []
    lock = threading.Lock()

    def claimer(worker: str) -> None:
        while True:
            took = take(backend, 5, worker=worker)
            if not took.jobs:
                return
            with lock:
                calls.append(took.jobs)

    threads = [threading.Thread(target=claimer, args=(f"w{n}",)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    ids = [job.id for jobs in calls for job in jobs]
    assert len(ids) == len(set(ids)) == 40
    assert all(len({job.group_key for job in jobs}) == 1 for jobs in calls)
    assert len(calls) == 8  # 10 per group, 5 per call: no group split short of its size
