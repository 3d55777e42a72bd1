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

import functools
import logging
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

import orjson

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


#: Makes a name or message safe where a line puts it: as it is in text, JSON-escaped (without
#: the quotes) in JSON.
Quote = Callable[[str], str]


def plain(text: str) -> str:
    """Text as it is (the text format's `Quote`)."""
    return text


@functools.lru_cache(maxsize=4096)
def json_escaped(text: str) -> str:
    """`text` JSON-escaped, without the quotes (the JSON format's `Quote`). Task and queue
    names repeat on every line, so their escaping is remembered."""
    return orjson.dumps(text).decode()[1:-1]


class JobLines(Generic[E]):
    """The message of a record holding a batch of job events: `str()` gives one line per
    event; `logfmt`'s formatters write each line with the record's time and level. Lines are
    built from the events only when a handler writes them."""

    __slots__ = ("events", "facts", "line")

    def __init__(
        self,
        events: Sequence[E],
        line: Callable[[E, Quote], str],
        facts: Callable[[E, Quote], str],
    ) -> None:
        self.events = events
        #: An event's line of text, each name and message passed through the `Quote`.
        self.line = line
        #: An event's JSON members after the record's own: a short fixed `message` (`"job
        #: started"`, as Sidekiq's JSON logs say "start"), then its facts in the order of
        #: FIELDS, none null. The facts already say what the text line says, and templates
        #: rather than a dict through a serializer keep the JSON format about as cheap as
        #: text (benchmarks/logging_ab.py).
        self.facts = facts

    def __str__(self) -> str:
        line = self.line
        return "\n".join([line(event, plain) for event in self.events])


def started(jobs: Sequence[Job]) -> None:
    """Say that these jobs were handed to an executor to run."""
    if jobs and log.isEnabledFor(logging.INFO):
        _emit(logging.INFO, JobLines(jobs, _started_line, _started_facts))


def _started_line(job: Job, q: Quote) -> str:
    return f"job {job.id} {q(job.task)} started (attempt {job.attempt}, queue {q(job.queue)})"


def _started_facts(job: Job, q: Quote) -> str:
    return f'"message":"job started","event":"started",{_job_facts(job, q)}'


def _job_facts(job: Job, q: Quote) -> str:
    return (
        f'"job_id":{job.id},"task":"{q(job.task)}","queue":"{q(job.queue)}","attempt":{job.attempt}'
    )


def ended(runs: Sequence[Finished], outcomes: Sequence[Outcome]) -> None:
    """Say how each run ended, as the worker decided (`outcomes[i]` is that of `runs[i]`)."""
    if runs and log.isEnabledFor(logging.INFO):
        ends = list(zip(runs, outcomes, strict=True))
        _emit(logging.INFO, JobLines(ends, _ended_line, _ended_facts))


def _ended_line(end: tuple[Finished, Outcome], q: Quote) -> str:
    f, outcome = end
    job = f.job
    state = outcome.state
    head = f"job {job.id} {q(job.task)}"
    if state is JobState.SUCCEEDED:
        if f.duration is None:
            return f"{head} succeeded"
        return f"{head} succeeded in {f.duration:.3f}s"
    if state is JobState.CANCELLED:
        return f"{head} cancelled (attempt {job.attempt})"
    kind, message = _error_of(f)
    if state is JobState.RETRYING:
        return (
            f"{head} failed (attempt {job.attempt} of {job.max_attempts}), "
            f"retry in {outcome.delay:.1f}s: {q(kind)}: {q(message)}"
        )
    return f"{head} dead after attempt {job.attempt}: {q(kind)}: {q(message)}"


def _ended_facts(end: tuple[Finished, Outcome], q: Quote) -> str:
    f, outcome = end
    job = f.job
    state = outcome.state
    event = _EVENTS[state]
    facts = (
        f'"message":"job {event}","event":"{event}","job_id":{job.id},"task":"{q(job.task)}",'
        f'"queue":"{q(job.queue)}","attempt":{job.attempt}'
    )
    if f.duration is not None:
        facts += f',"duration_s":{f.duration:.6f}'
    if state is JobState.SUCCEEDED:
        return facts
    if state is JobState.RETRYING:
        facts += f',"retry_in_s":{outcome.delay:.6f}'
    kind, message = _error_of(f)
    return f'{facts},"error_type":"{q(kind)}","error":"{q(message)}"'


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
        _emit(logging.WARNING, JobLines(lost, _lost_line, _lost_facts))


def _lost_line(lost: _Lost, q: Quote) -> str:
    job_id, job, when = lost
    task = "" if job is None else f" {q(job.task)}"
    return f"job {job_id}{task} lease lost {when}"


def _lost_facts(lost: _Lost, q: Quote) -> str:
    job_id, job, _ = lost
    if job is None:
        return f'{_LOST},"job_id":{job_id}'
    return f"{_LOST},{_job_facts(job, q)}"


_LOST = '"message":"job lease lost","event":"lease_lost"'


def _emit(level: int, lines: JobLines[Any]) -> None:
    """One record for a batch of events. Built with `makeRecord`, as `Logger.log` would,
    without its search of the stack for the caller: that is this module."""
    log.handle(log.makeRecord(log.name, level, __file__, 0, lines, (), None))


def _error_of(f: Finished) -> tuple[str, str]:
    """The error's type and its message on one line, cut to `_MESSAGE_LIMIT`."""
    error = f.error or {}
    message = str(error.get("message") or "").replace("\n", " ")
    return str(error.get("type") or "Error"), clip(message, _MESSAGE_LIMIT)


__all__ = [
    "FIELDS",
    "JobLines",
    "Quote",
    "ended",
    "json_escaped",
    "lease_lost",
    "log",
    "plain",
    "started",
]
