"""One log line per job event on the `offload.jobs` logger, as Celery and Sidekiq users expect.

At INFO: started, succeeded (with how long the run took), failed (with the delay before its
retry), dead (with the error's type and message), cancelled. At WARNING: a lease lost, since
another attempt then owns the job. Each line has its facts (`FIELDS`) for the JSON format.

The events of one batch (the jobs one turn of the worker started, or saw end) travel in one
log record whose message is a `JobLines`: a record costs about 10 us, several times what a
short job costs the worker, and one per job took a third off a drain's rate. The formatters
of `offload.runtime.logfmt` write one line (or JSON object) per event, each with the record's
time and level; any other handler gets the events' lines as one message. The level is checked
once per batch, nothing is built when INFO is off, and lines are formatted only when a
handler writes them. Nothing here reads the database.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from offload.backends.params import Outcome
from offload.core.errors import clip
from offload.core.job import Job
from offload.core.states import JobState
from offload.runtime.executor import Finished

log = logging.getLogger("offload.jobs")

#: The facts a job's line may carry, in the order the JSON format writes them.
FIELDS = (
    "event",
    "job_id",
    "task",
    "queue",
    "attempt",
    "duration_s",
    "retry_in_s",
    "error_type",
    "error",
)

#: Characters of an error message a line shows at most (the job's row keeps it whole).
_MESSAGE_LIMIT = 500

E = TypeVar("E")


class JobLines(Generic[E]):
    """The message of a record holding a batch of job events: `str()` gives one line per
    event; `logfmt`'s formatters write each line with the record's time and level. Lines and
    facts are built from the events only when a handler writes them."""

    __slots__ = ("events", "facts", "text")

    def __init__(
        self,
        events: Sequence[E],
        text: Callable[[E], str],
        facts: Callable[[E], dict[str, Any]],
    ) -> None:
        self.events = events
        #: An event's line of text.
        self.text = text
        #: An event's facts by name, in the order of FIELDS and none None (JSON format).
        self.facts = facts

    def __str__(self) -> str:
        text = self.text
        return "\n".join([text(event) for event in self.events])


def started(jobs: Sequence[Job]) -> None:
    """Say that these jobs were handed to an executor to run."""
    if jobs and log.isEnabledFor(logging.INFO):
        _emit(logging.INFO, JobLines(jobs, _started_text, _started_facts))


def _started_text(job: Job) -> str:
    return f"job {job.id} {job.task} started (attempt {job.attempt}, queue {job.queue})"


def _started_facts(job: Job) -> dict[str, Any]:
    return {
        "event": "started",
        "job_id": job.id,
        "task": job.task,
        "queue": job.queue,
        "attempt": job.attempt,
    }


def ended(runs: Sequence[Finished], outcomes: Sequence[Outcome]) -> None:
    """Say how each run ended, as the worker decided (`outcomes[i]` is that of `runs[i]`)."""
    if runs and log.isEnabledFor(logging.INFO):
        ends = list(zip(runs, outcomes, strict=True))
        _emit(logging.INFO, JobLines(ends, _ended_text, _ended_facts))


def _ended_text(end: tuple[Finished, Outcome]) -> str:
    f, outcome = end
    job = f.job
    state = outcome.state
    if state is JobState.SUCCEEDED:
        if f.duration is None:
            return f"job {job.id} {job.task} succeeded"
        return f"job {job.id} {job.task} succeeded in {f.duration:.3f}s"
    kind, message = _error_of(f)
    if state is JobState.RETRYING:
        return (
            f"job {job.id} {job.task} failed (attempt {job.attempt} of {job.max_attempts}), "
            f"retry in {outcome.delay:.1f}s: {kind}: {message}"
        )
    if state is JobState.CANCELLED:
        return f"job {job.id} {job.task} cancelled (attempt {job.attempt})"
    return f"job {job.id} {job.task} dead after attempt {job.attempt}: {kind}: {message}"


def _ended_facts(end: tuple[Finished, Outcome]) -> dict[str, Any]:
    f, outcome = end
    job = f.job
    state = outcome.state
    facts: dict[str, Any] = {
        "event": _EVENTS[state],
        "job_id": job.id,
        "task": job.task,
        "queue": job.queue,
        "attempt": job.attempt,
    }
    if f.duration is not None:
        facts["duration_s"] = f.duration
    if state is not JobState.SUCCEEDED:
        if state is JobState.RETRYING:
            facts["retry_in_s"] = outcome.delay
        facts["error_type"], facts["error"] = _error_of(f)
    return facts


#: The event a run's end is, by the state the worker recorded.
_EVENTS = {
    JobState.SUCCEEDED: "succeeded",
    JobState.RETRYING: "failed",
    JobState.DEAD: "dead",
    JobState.CANCELLED: "cancelled",
}

#: A lost lease: the job's id, the job when still known, and what was going on.
_Lost = tuple[int, Job | None, str]


def lease_lost(job_id: int, job: Job | None, when: str) -> None:
    """Say that another attempt took over a job this worker held (`job`, when still known),
    `when` being what was going on: its outcome here is not recorded."""
    if log.isEnabledFor(logging.WARNING):
        lost: list[_Lost] = [(job_id, job, when)]
        _emit(logging.WARNING, JobLines(lost, _lost_text, _lost_facts))


def _lost_text(lost: _Lost) -> str:
    job_id, job, when = lost
    task = "" if job is None else f" {job.task}"
    return f"job {job_id}{task} lease lost {when}"


def _lost_facts(lost: _Lost) -> dict[str, Any]:
    job_id, job, _ = lost
    if job is None:
        return {"event": "lease_lost", "job_id": job_id}
    return {
        "event": "lease_lost",
        "job_id": job_id,
        "task": job.task,
        "queue": job.queue,
        "attempt": job.attempt,
    }


def _emit(level: int, lines: JobLines[Any]) -> None:
    """One record for a batch of events. Built with `makeRecord`, as `Logger.log` would,
    without its search of the stack for the caller: that is this module."""
    log.handle(log.makeRecord(log.name, level, __file__, 0, lines, (), None))


def _error_of(f: Finished) -> tuple[str, str]:
    """The error's type and its message on one line, cut to `_MESSAGE_LIMIT`."""
    error = f.error or {}
    message = str(error.get("message") or "").replace("\n", " ")
    return str(error.get("type") or "Error"), clip(message, _MESSAGE_LIMIT)


__all__ = ["FIELDS", "JobLines", "ended", "lease_lost", "log", "started"]
