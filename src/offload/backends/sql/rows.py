"""Rows read by column name into core values, whatever order a statement selects them in.

A `Columns` map is built from a cursor's description once per statement; decoders look
each field up by name, so a column added to a query or a table shifts nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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

    def __init__(self, description: Sequence[Sequence[Any]]) -> None:
        self.index = {str(column[0]): i for i, column in enumerate(description)}

    def __getitem__(self, name: str) -> int:
        return self.index[name]


def _json(value: str | bytes | None) -> Any:
    """Decode a JSON column, which both backends return as text."""
    return None if value is None else orjson.loads(value)


def jobs_from(cur: Any, rows: Sequence[Sequence[Any]], time: TimeReader) -> list[Job]:
    """Decode job rows fetched from `cur`."""
    if not rows:
        return []
    c = Columns(cur.description).index

    def opt(value: Any) -> datetime | None:
        return None if value is None else time(value)

    return [
        Job(
            id=int(row[c["id"]]),
            task=row[c["task"]],
            queue=row[c["queue"]],
            args=_json(row[c["args"]]),
            kwargs=_json(row[c["kwargs"]]),
            priority=int(row[c["priority"]]),
            state=JobState(row[c["state"]]),
            attempt=int(row[c["attempt"]]),
            max_attempts=int(row[c["max_attempts"]]),
            run_at=time(row[c["run_at"]]),
            enqueued_at=time(row[c["enqueued_at"]]),
            started_at=opt(row[c["started_at"]]),
            finished_at=opt(row[c["finished_at"]]),
            lease_until=opt(row[c["lease_until"]]),
            worker=row[c["worker"]],
            result=_json(row[c["result"]]),
            errors=_json(row[c["errors"]]),
            unique_key=row[c["unique_key"]],
            idempotency_key=row[c["idempotency_key"]],
            group_key=row[c["group_key"]],
            meta=_json(row[c["meta"]]),
            progress=_json(row[c["progress"]]),
            cancel_requested=bool(row[c["cancel_requested"]]),
        )
        for row in rows
    ]


def workers_from(cur: Any, rows: Sequence[Sequence[Any]], time: TimeReader) -> list[WorkerInfo]:
    """Decode worker registry rows fetched from `cur`."""
    if not rows:
        return []
    c = Columns(cur.description).index
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
    c = Columns(cur.description).index
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


def column(cur: Any, rows: Sequence[Sequence[Any]], name: str) -> list[Any]:
    """One named column of fetched rows."""
    if not rows:
        return []
    at = Columns(cur.description)[name]
    return [row[at] for row in rows]
