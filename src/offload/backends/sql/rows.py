"""Rows read by column name into core values, whatever order a statement selects them in.

A `Columns` map is found from a statement's column names (and kept for the next statement
with the same names); decoders look each field up by name, so a column added to a query or
a table shifts nothing.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

import orjson

from offload.core.job import Job
from offload.core.records import ScheduleState, WorkerInfo
from offload.core.states import JobState

#: Converts a stored time (epoch seconds on SQLite, a timestamp on PostgreSQL) to UTC.
TimeReader = Callable[[Any], datetime]


class Columns:
    """Column name -> position in the rows of one statement."""

    __slots__ = ("index",)

    def __init__(self, names: Sequence[str]) -> None:
        self.index = {name: i for i, name in enumerate(names)}

    def __getitem__(self, name: str) -> int:
        return self.index[name]

    @classmethod
    def of(cls, cur: Any) -> Columns:
        """The columns of `cur`'s result (the same map for every statement of the same names)."""
        return _columns(column_names(cur))


def column_names(cur: Any) -> tuple[str, ...]:
    """The names of the columns of `cur`'s result, in order.

    psycopg's `description` builds a Column object with a type lookup per column on every
    call (38 us for a job row, more than the claim's own decoding); its `pgresult` has the
    names. sqlite3 keeps its description tuple from the execute.
    """
    result = getattr(cur, "pgresult", None)
    if result is not None:
        return tuple(result.fname(i).decode() for i in range(result.nfields))
    return tuple(str(column[0]) for column in cur.description)


@functools.lru_cache(maxsize=64)
def _columns(names: tuple[str, ...]) -> Columns:
    return Columns(names)


def _json(value: str | bytes | None) -> Any:
    """Decode a JSON column, which both backends return as text."""
    return None if value is None else orjson.loads(value)


#: The job row's columns, in the order `jobs_from` unpacks them.
_JOB_FIELDS = (
    "id", "task", "queue", "args", "kwargs", "priority", "state", "attempt", "max_attempts",
    "run_at", "enqueued_at", "started_at", "finished_at", "lease_until", "worker", "result",
    "errors", "unique_key", "idempotency_key", "group_key", "meta", "progress",
    "cancel_requested", "replace_key", "superseded_by", "channel", "workflow_id", "node",
    "parents", "takes",
)  # fmt: skip
_STATES = {state.value: state for state in JobState}


def jobs_from(cur: Any, rows: Sequence[Sequence[Any]], time: TimeReader) -> list[Job]:
    """Decode job rows fetched from `cur`: the columns are found by name once per
    statement, then each row is unpacked by one getter (claims decode every job they take)."""
    if not rows:
        return []
    return _decode(column_names(cur), rows, time)


def keyed_jobs_from(
    cur: Any, rows: Sequence[Sequence[Any]], time: TimeReader, key: str
) -> list[tuple[Any, Job]]:
    """`jobs_from`, each job with its row's column `key` (a claim's `sort_at`), the
    column names read once (on psycopg, 10 us a read for a job row)."""
    if not rows:
        return []
    names = column_names(cur)
    at = _columns(names)[key]
    return list(zip((row[at] for row in rows), _decode(names, rows, time), strict=True))


def _decode(names: tuple[str, ...], rows: Sequence[Sequence[Any]], time: TimeReader) -> list[Job]:
    """Job rows of columns `names` as jobs."""
    fields = _job_fields(names)
    loads = orjson.loads
    # A claim's jobs share their start and lease times, a batch's their enqueue time: each
    # stored time is converted once per call.
    times: dict[Any, datetime] = {}

    def at(value: Any) -> datetime:
        found = times.get(value)
        if found is None:
            found = times[value] = time(value)
        return found

    jobs = []
    for row in rows:
        (job_id, task, queue, args, kwargs, priority, state, attempt, max_attempts, run_at,
         enqueued_at, started_at, finished_at, lease_until, worker, result, errors,
         unique_key, idempotency_key, group_key, meta, progress, cancel, replace_key,
         superseded_by, channel, workflow_id, node, parents, takes) = fields(row)  # fmt: skip
        jobs.append(
            Job(
                id=int(job_id),
                task=task,
                queue=queue,
                args=loads(args),
                kwargs=loads(kwargs),
                priority=int(priority),
                state=_STATES[state],
                attempt=int(attempt),
                max_attempts=int(max_attempts),
                run_at=at(run_at),
                enqueued_at=at(enqueued_at),
                started_at=None if started_at is None else at(started_at),
                finished_at=None if finished_at is None else at(finished_at),
                lease_until=None if lease_until is None else at(lease_until),
                worker=worker,
                result=None if result is None else loads(result),
                errors=[] if errors == "[]" else loads(errors),  # the usual: none yet
                unique_key=unique_key,
                idempotency_key=idempotency_key,
                group_key=group_key,
                meta={} if meta == "{}" else loads(meta),
                progress=None if progress is None else loads(progress),
                cancel_requested=bool(cancel),
                replace_key=replace_key,
                superseded_by=None if superseded_by is None else int(superseded_by),
                channel=channel,
                workflow_id=None if workflow_id is None else int(workflow_id),
                node=node,
                parents=int(parents),
                takes=takes,
            )
        )
    return jobs


@functools.lru_cache(maxsize=16)
def _job_fields(names: tuple[str, ...]) -> Callable[[Sequence[Any]], tuple[Any, ...]]:
    """A getter of a job row's fields in `_JOB_FIELDS` order, for rows of these columns."""
    c = _columns(names)
    return operator.itemgetter(*(c[name] for name in _JOB_FIELDS))


def workers_from(cur: Any, rows: Sequence[Sequence[Any]], time: TimeReader) -> list[WorkerInfo]:
    """Decode worker registry rows fetched from `cur`."""
    if not rows:
        return []
    c = Columns.of(cur).index
    return [
        WorkerInfo(
            id=row[c["id"]],
            host=row[c["host"]],
            pid=int(row[c["pid"]]),
            queues=list(_json(row[c["queues"]])),
            concurrency=int(row[c["concurrency"]]),
            started_at=time(row[c["started_at"]]),
            heartbeat_at=time(row[c["heartbeat_at"]]),
            wake=row[c["wake"]],
        )
        for row in rows
    ]


def schedules_from(
    cur: Any, rows: Sequence[Sequence[Any]], time: TimeReader
) -> list[ScheduleState]:
    """Decode schedule rows (joined with their last job's state) fetched from `cur`."""
    if not rows:
        return []
    c = Columns.of(cur).index
    return [
        ScheduleState(
            name=row[c["name"]],
            cron=row[c["cron"]],
            tz=row[c["tz"]],
            task=row[c["task"]],
            misfire=row[c["misfire"]],
            paused=bool(row[c["paused"]]),
            last_tick=time(row[c["last_tick"]]),
            checked_at=time(row[c["checked_at"]]),
            last_job_id=None if row[c["last_job_id"]] is None else int(row[c["last_job_id"]]),
            last_state=None if row[c["last_state"]] is None else JobState(row[c["last_state"]]),
        )
        for row in rows
    ]


def cells(cur: Any, rows: Sequence[Sequence[Any]], *names: str) -> Iterator[tuple[Any, ...]]:
    """The named columns of fetched rows, row by row."""
    return zip(*(column(cur, rows, name) for name in names), strict=True)


def column(cur: Any, rows: Sequence[Sequence[Any]], name: str) -> list[Any]:
    """One named column of fetched rows."""
    if not rows:
        return []
    at = Columns.of(cur)[name]
    return [row[at] for row in rows]
