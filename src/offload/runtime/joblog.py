"""One log line per job event on the `offload.jobs` logger, as Celery and Sidekiq users expect.

At INFO: started, succeeded (with how long the run took), failed (with the delay before its
retry), dead (with the error's type and message), cancelled. At WARNING: a lease lost, since
another attempt then owns the job. Each record carries its facts as attributes (`FIELDS`) for
`offload.runtime.logfmt.JsonFormatter`; the text line says the same in words.

The worker calls these once per batch of jobs, so the level is checked once per batch and
nothing is built when INFO is off; messages are %-formatted only by a handler that prints them.
Nothing here reads the database.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

from offload.backends.params import Outcome
from offload.core.errors import clip
from offload.core.job import Job
from offload.core.states import JobState
from offload.runtime.executor import Finished

log = logging.getLogger("offload.jobs")

#: The attributes a job's record may carry, in the order the JSON formatter writes them.
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


def started(jobs: Iterable[Job]) -> None:
    """Say that these jobs were handed to an executor to run."""
    if not log.isEnabledFor(logging.INFO):
        return
    for job in jobs:
        log.info(
            "job %s %s started (attempt %s, queue %s)",
            job.id,
            job.task,
            job.attempt,
            job.queue,
            extra={
                "event": "started",
                "job_id": job.id,
                "task": job.task,
                "queue": job.queue,
                "attempt": job.attempt,
            },
        )


def ended(runs: Sequence[Finished], outcomes: Sequence[Outcome]) -> None:
    """Say how each run ended, as the worker decided (`outcomes[i]` is that of `runs[i]`)."""
    if not log.isEnabledFor(logging.INFO):
        return
    for f, outcome in zip(runs, outcomes, strict=True):
        job = f.job
        facts: dict[str, Any] = {
            "job_id": job.id,
            "task": job.task,
            "queue": job.queue,
            "attempt": job.attempt,
            "duration_s": f.duration,
        }
        state = outcome.state
        if state is JobState.SUCCEEDED:
            facts["event"] = "succeeded"
            if f.duration is None:
                log.info("job %s %s succeeded", job.id, job.task, extra=facts)
            else:
                log.info("job %s %s succeeded in %.3fs", job.id, job.task, f.duration, extra=facts)
            continue
        kind, message = _error_of(f)
        facts["error_type"], facts["error"] = kind, message
        if state is JobState.RETRYING:
            facts["event"] = "failed"
            facts["retry_in_s"] = outcome.delay
            log.info(
                "job %s %s failed (attempt %s of %s), retry in %.1fs: %s: %s",
                job.id,
                job.task,
                job.attempt,
                job.max_attempts,
                outcome.delay,
                kind,
                message,
                extra=facts,
            )
        elif state is JobState.CANCELLED:
            facts["event"] = "cancelled"
            log.info("job %s %s cancelled (attempt %s)", job.id, job.task, job.attempt, extra=facts)
        else:
            facts["event"] = "dead"
            log.info(
                "job %s %s dead after attempt %s: %s: %s",
                job.id,
                job.task,
                job.attempt,
                kind,
                message,
                extra=facts,
            )


def lease_lost(job_id: int, job: Job | None, when: str) -> None:
    """Say that another attempt took over a job this worker held (`job`, when still known),
    `when` being what was going on: its outcome here is not recorded."""
    facts: dict[str, Any] = {"event": "lease_lost", "job_id": job_id}
    if job is not None:
        facts.update(task=job.task, queue=job.queue, attempt=job.attempt)
    task = "" if job is None else f" {job.task}"
    log.warning("job %s%s lease lost %s", job_id, task, when, extra=facts)


def _error_of(f: Finished) -> tuple[str, str]:
    """The error's type and its message on one line, cut to `_MESSAGE_LIMIT`."""
    error = f.error or {}
    message = str(error.get("message") or "").replace("\n", " ")
    return str(error.get("type") or "Error"), clip(message, _MESSAGE_LIMIT)


__all__ = ["FIELDS", "ended", "lease_lost", "log", "started"]
