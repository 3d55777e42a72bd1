"""Outcome writers (offload.runtime.outcomes), each on both backends: what they record, what
they report to the worker loop, and how a failed write reaches it."""

from __future__ import annotations

import select
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import pytest

from offload.backends.base import Backend
from offload.backends.params import ClaimParams, Outcome
from offload.core.states import JobState
from offload.runtime.outcomes import LoopWriter, OutcomeWriter, ThreadWriter, outcome_writer
from tests.conformance.helpers import RawDB, error_json, insert

KINDS = ("loop", "thread")


def make_writer(kind: str, backend: Backend) -> OutcomeWriter:
    if kind == "thread":
        return ThreadWriter(backend, "w1")
    return LoopWriter(backend, "w1", delay=0.005)


def settle(writer: OutcomeWriter, timeout: float = 10.0) -> bool:
    """What the worker loop does until everything submitted is recorded: write when due,
    wait on the writer's descriptors, `check`. Returns whether `check` saw a retry."""
    deadline = time.monotonic() + timeout
    retried = False
    while writer.unwritten():
        assert time.monotonic() < deadline, f"{writer.unwritten()} outcomes still unwritten"
        writer.turn(busy=False)
        select.select(writer.waitables(), [], [], 0.05)
        retried |= writer.check()
    return retried | writer.check()


def test_each_backend_gets_the_writer_that_suits_it(backend: Backend) -> None:
    writer = outcome_writer(backend, "w1", 0.005)
    try:
        expected = ThreadWriter if backend.name == "postgresql" else LoopWriter
        assert isinstance(writer, expected)
    finally:
        writer.close()


@pytest.mark.parametrize("kind", KINDS)
def test_outcomes_are_recorded_and_counted(backend: Backend, kind: str) -> None:
    insert(backend, 30)
    jobs = backend.claims.claim(ClaimParams("w1", "default", 30, 30.0))
    writer = make_writer(kind, backend)
    try:
        for start in range(0, 30, 7):  # several submissions, as the loop makes them
            writer.submit(
                [Outcome(j.id, j.attempt, JobState.SUCCEEDED, result=f"{j.id}") for j in jobs][
                    start : start + 7
                ]
            )
        assert settle(writer) is False  # nothing was a retry
        assert writer.written == 30
    finally:
        writer.close()
    for job in jobs:
        stored = backend.jobs.get(job.id)
        assert (stored.state, stored.result) == (JobState.SUCCEEDED, job.id)


@pytest.mark.parametrize("kind", KINDS)
def test_a_written_retry_is_reported_once(backend: Backend, kind: str) -> None:
    insert(backend, 2)
    a, b = backend.claims.claim(ClaimParams("w1", "default", 2, 30.0))
    writer = make_writer(kind, backend)
    try:
        writer.submit([Outcome(a.id, 1, JobState.RETRYING, error=error_json(), delay=0.0)])
        assert settle(writer) is True
        assert writer.check() is False
        writer.submit([Outcome(b.id, 1, JobState.SUCCEEDED, result="1")])
        assert settle(writer) is False
    finally:
        writer.close()
    assert backend.jobs.get(a.id).state == JobState.RETRYING
    assert [job.id for job in backend.claims.claim(ClaimParams("w2", "default", 5, 30.0))] == [a.id]


def test_the_loop_writer_batches_only_while_outcomes_arrive_densely(backend: Backend) -> None:
    insert(backend, 12)
    jobs = backend.claims.claim(ClaimParams("w1", "default", 12, 30.0))
    done = [Outcome(j.id, j.attempt, JobState.SUCCEEDED, result="1") for j in jobs]
    writer = LoopWriter(backend, "w1", delay=60.0)
    writer.submit(done[:1])
    writer.turn(busy=True)  # a lone outcome after a quiet spell: written at once
    assert writer.unwritten() == 0
    writer.submit(done[1:6])
    writer.turn(busy=True)  # the last write was moments ago: this one waits for company
    assert writer.unwritten() == 5
    assert writer.deadline() is not None
    writer.turn(busy=False)  # nothing left running to wait for: written now
    assert (writer.unwritten(), writer.written) == (0, 6)
    writer.submit(done[6:])
    writer.close()
    assert writer.written == 12


@contextmanager
def failing_write(backend: Backend, db_url: str) -> Iterator[tuple[ThreadWriter, int]]:
    """A thread writer and one claimed job whose outcome it cannot write: the jobs table is
    renamed away meanwhile (and back afterwards)."""
    insert(backend, 1)
    (job,) = backend.claims.claim(ClaimParams("w1", "default", 1, 30.0))
    writer = ThreadWriter(backend, "w1")
    raw = RawDB(db_url)
    raw.execute("ALTER TABLE offload_jobs RENAME TO offload_jobs_away")
    try:
        writer.submit([Outcome(job.id, 1, JobState.SUCCEEDED, result="1")])
        yield writer, job.id
    finally:
        with suppress(Exception):  # closed by the test already, or its error seen
            writer.close(5.0)
        raw.execute("ALTER TABLE offload_jobs_away RENAME TO offload_jobs")


def test_a_failed_write_is_raised_in_the_loop(backend: Backend, db_url: str) -> None:
    with failing_write(backend, db_url) as (writer, job_id):
        ready, _, _ = select.select(writer.waitables(), [], [], 10.0)
        assert ready, "the writer did not signal its failure"
        with pytest.raises(Exception, match="offload_jobs") as caught:
            writer.check()
        assert type(caught.value).__module__.startswith("offload.")
        assert writer.unwritten() == 0
        writer.close(5.0)  # the error was raised once, by check
    assert backend.jobs.get(job_id).state == JobState.RUNNING  # its lease will rerun it


def test_the_thread_writer_wakes_the_loop_once_per_signal(backend: Backend) -> None:
    insert(backend, 3)
    jobs = backend.claims.claim(ClaimParams("w1", "default", 3, 30.0))
    writer = ThreadWriter(backend, "w1")
    try:
        for job in jobs:
            writer.submit([Outcome(job.id, 1, JobState.SUCCEEDED, result="1")])
            ready, _, _ = select.select(writer.waitables(), [], [], 10.0)
            assert ready, "the writer did not signal that it had written everything"
            assert writer.unwritten() == 0
            assert writer.check() is False
            idle, _, _ = select.select(writer.waitables(), [], [], 0)
            assert idle == [], "after check the loop must be able to sleep"
    finally:
        writer.close()
    assert writer.written == 3
    writer.close()  # again: nothing left to do


def test_closing_after_a_failed_write_raises_it_once(backend: Backend, db_url: str) -> None:
    with failing_write(backend, db_url) as (writer, _):
        with pytest.raises(Exception, match="offload_jobs"):
            writer.close(10.0)
        writer.close(10.0)
