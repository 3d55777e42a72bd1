"""What both SQL backends share: named-query files, row decoding and every operation.

Each backend keeps its SQL in `queries.sql` (one `-- name:` block per operation) and its
schema in `migrations/NNNN_*.sql`. `SqlBackend` runs those named queries; a backend only
supplies connections, transactions, time conversion and its wake-up channel.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from importlib import resources
from typing import Any, ClassVar

import orjson

from offload.backends.base import (
    Heartbeat,
    JobFilter,
    Lease,
    Listener,
    Outcome,
    ProgressReport,
    ScheduleState,
    WorkerInfo,
)
from offload.core.errors import InvalidTransition, JobNotFound, ScheduleNotFound, SchemaMismatch
from offload.core.job import Job, JobBatch, NewJob
from offload.core.schedule import ScheduleDef
from offload.core.states import FINISHED, JobState

#: Columns of offload_jobs in the order `_job_from_row` reads them.
JOB_COLUMNS = (
    "id, task, queue, args, kwargs, priority, state, attempt, max_attempts, run_at, "
    "enqueued_at, started_at, finished_at, lease_until, worker, result, errors, "
    "unique_key, idempotency_key, group_key, meta, progress, cancel_requested"
)
WORKER_COLUMNS = "id, host, pid, queues, concurrency, started_at, heartbeat_at, wake"

_NAME = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Queries:
    """Named SQL statements parsed from one backend's `queries.sql`."""

    text: dict[str, str]

    def __getitem__(self, name: str) -> str:
        return self.text[name]

    @classmethod
    def load(cls, package: str, macros: Mapping[str, str], pyformat: bool) -> Queries:
        """Parse `queries.sql` of `package`, expand `{macros}`, convert `:param` if pyformat."""
        source = resources.files(package).joinpath("queries.sql").read_text()
        parts = _NAME.split(source)
        text: dict[str, str] = {}
        for name, body in zip(parts[1::2], parts[2::2], strict=True):
            sql = body.strip()
            for key, value in macros.items():
                sql = sql.replace("{" + key + "}", value)
            if pyformat:  # psycopg: %(name)s placeholders, literal % doubled
                sql = re.sub(r"(?<![:\w]):(\w+)", r"%(\1)s", sql.replace("%", "%%"))
            text[name] = sql
        return cls(text)


def migration_files(package: str) -> list[tuple[int, str]]:
    """(version, SQL text) of every migration of a backend, in order."""
    folder = resources.files(package).joinpath("migrations")
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            found.append((int(entry.name.split("_", 1)[0]), entry.read_text()))
    return sorted(found)


def _json(value: str | bytes) -> Any:
    """Decode a JSON column, which both backends return as text."""
    return orjson.loads(value)


def _leases_json(leases: Sequence[Lease]) -> str:
    return orjson.dumps([{"id": x.id, "attempt": x.attempt} for x in leases]).decode()


class SqlBackend(ABC):
    """Every Backend operation, written once over named queries."""

    name: ClassVar[str]
    package: ClassVar[str]
    location: str
    q: Queries

    # -- what each backend supplies -------------------------------------------------

    @abstractmethod
    def _tx(
        self, conn: Any = None, *, single: bool = False, relaxed: bool = False
    ) -> AbstractContextManager[Any]:
        """A write transaction yielding a DB-API cursor; on `conn`, the caller's transaction.

        `single` promises one statement, which is atomic by itself: PostgreSQL then skips
        BEGIN and COMMIT, saving two round trips. `relaxed` marks a worker's bookkeeping
        (claims, outcomes, leases): its commit need not wait for the disk, because losing it
        in a power failure only makes a job run again, as at-least-once delivery allows.
        Later durable commits flush it anyway (the log is written in order).
        """

    @abstractmethod
    def _read(self) -> AbstractContextManager[Any]:
        """A cursor for reads (may be the write connection)."""

    @abstractmethod
    def _time(self, value: Any) -> datetime:
        """Convert a stored time to an aware UTC datetime."""

    @abstractmethod
    def _time_param(self, value: datetime) -> Any:
        """Convert an aware datetime to the form queries take."""

    @abstractmethod
    def _apply_migration(self, version: int, sql: str) -> None:
        """Run one migration script and record its version, atomically."""

    @abstractmethod
    def _notify(self, cur: Any, queues: set[str]) -> None:
        """Wake workers of these queues once the current transaction commits (PostgreSQL's
        statements NOTIFY by themselves; SQLite signals after COMMIT)."""

    @abstractmethod
    def listener(self) -> Listener: ...

    @abstractmethod
    def close(self) -> None: ...

    # -- schema ---------------------------------------------------------------------

    @property
    def schema_target(self) -> int:
        """The schema version this code needs: the newest migration shipped."""
        return migration_files(self.package)[-1][0]

    def schema_version(self) -> int:
        """The version recorded in the database (0 when offload was never installed)."""
        with self._read() as cur:
            cur.execute(self.q["schema_exists"])
            if cur.fetchone() is None:
                return 0
            cur.execute(self.q["schema_version"])
            row = cur.fetchone()
            return int(row[0]) if row and row[0] is not None else 0

    def migrate(self) -> int:
        target = self.schema_target
        found = self.schema_version()
        if found > target:
            raise SchemaMismatch(self.location, found, target)
        for version, sql in migration_files(self.package):
            if version > found:
                self._apply_migration(version, sql)
        return target

    def schema_check(self) -> None:
        found, target = self.schema_version(), self.schema_target
        if found != target:
            raise SchemaMismatch(self.location, found, target)

    # -- jobs -----------------------------------------------------------------------

    def now(self) -> datetime:
        with self._read() as cur:
            cur.execute(self.q["now"])
            return self._time(cur.fetchone()[0])

    def job_insert(self, jobs: Sequence[NewJob], conn: Any = None) -> list[int]:
        if not jobs:
            return []
        with self._tx(conn, single=True) as cur:
            if len(jobs) == 1:
                queues = {jobs[0].queue}
                cur.execute(self.q["job_insert"], _new_job_params(jobs[0]))
                ids = [int(cur.fetchone()[0])]
            else:
                if isinstance(jobs, JobBatch):  # one template: only the payloads per row
                    queues = {jobs.template.queue}
                    params = _new_job_params(jobs.template)
                    del params["args"], params["kwargs"]
                    pairs = list(zip(jobs.args, jobs.kwargs, strict=True))
                    params["payloads"] = orjson.dumps(pairs).decode()
                    cur.execute(self.q["job_insert_batch"], params)
                else:
                    queues = {job.queue for job in jobs}
                    rows = orjson.dumps([_new_job_params(job) for job in jobs]).decode()
                    cur.execute(self.q["job_insert_many"], {"rows": rows})
                # Ids come from one sequence in row order; RETURNING order is not promised.
                ids = sorted(int(row[0]) for row in cur.fetchall())
            self._notify(cur, queues)
        return ids

    def job_claim(self, worker: str, queue: str, limit: int, lease: float) -> list[Job]:
        if limit < 1:  # SQLite would read LIMIT -1 as "no limit", PostgreSQL would fail
            return []
        with self._tx(single=True, relaxed=True) as cur:
            cur.execute(
                self.q["job_claim"],
                {"worker": worker, "queue": queue, "limit": limit, "lease": lease},
            )
            rows = cur.fetchall()
        jobs = [self._job(row) for row in rows]
        jobs.sort(key=lambda job: (-job.priority, job.id))
        return jobs

    def job_heartbeat(self, worker: str, leases: Sequence[Lease], lease: float) -> Heartbeat:
        if not leases:
            return Heartbeat([], [])
        with self._tx(single=True, relaxed=True) as cur:
            cur.execute(
                self.q["job_heartbeat"],
                {
                    "worker": worker,
                    "leases": _leases_json(leases),
                    "ids": [x.id for x in leases],
                    "lease": lease,
                },
            )
            rows = cur.fetchall()
        kept = {int(row[0]) for row in rows}
        return Heartbeat(
            lost=[x.id for x in leases if x.id not in kept],
            cancel=sorted(int(row[0]) for row in rows if row[1]),
        )

    def job_progress(self, worker: str, reports: Sequence[ProgressReport]) -> None:
        if not reports:
            return
        items = orjson.dumps(
            [
                {
                    "id": r.id,
                    "attempt": r.attempt,
                    "progress": orjson.dumps(
                        {"fraction": r.fraction, "message": r.message}
                    ).decode(),
                }
                for r in reports
            ]
        ).decode()
        with self._tx(single=True, relaxed=True) as cur:
            cur.execute(
                self.q["job_progress"],
                {"worker": worker, "items": items, "ids": [r.id for r in reports]},
            )

    def job_finish(self, worker: str, outcomes: Sequence[Outcome]) -> list[int]:
        if not outcomes:
            return []
        items = orjson.dumps(
            [
                {
                    "id": o.id,
                    "attempt": o.attempt,
                    "state": str(o.state),
                    "result": o.result,
                    "error": o.error,
                    "delay": o.delay,
                }
                for o in outcomes
            ]
        ).decode()
        with self._tx(single=True, relaxed=True) as cur:
            cur.execute(
                self.q["job_finish"],
                {"worker": worker, "items": items, "ids": [o.id for o in outcomes]},
            )
            kept = {int(row[0]) for row in cur.fetchall()}
        return [o.id for o in outcomes if o.id not in kept]

    def job_release(self, worker: str, leases: Sequence[Lease]) -> int:
        if not leases:
            return 0
        with self._tx(single=True, relaxed=True) as cur:
            cur.execute(
                self.q["job_release"],
                {"worker": worker, "leases": _leases_json(leases), "ids": [x.id for x in leases]},
            )
            released = cur.fetchall()
            queues = {str(row[1]) for row in released}
            if queues:
                self._notify(cur, queues)
        return len(released)

    def job_get(self, job_id: int) -> Job:
        with self._read() as cur:
            cur.execute(self.q["job_get"], {"id": job_id})
            row = cur.fetchone()
        if row is None:
            raise JobNotFound(job_id)
        return self._job(row)

    def job_list(self, where: JobFilter) -> list[Job]:
        params = {
            "queue": where.queue,
            "state": None if where.state is None else str(where.state),
            "task": where.task,
            "before_id": where.before_id,
            "limit": where.limit,
        }
        with self._read() as cur:
            cur.execute(self.q["job_list"], params)
            return [self._job(row) for row in cur.fetchall()]

    def job_cancel(self, job_id: int) -> Job:
        return self._transition(job_id, "job_cancel", "cancel")

    def job_retry(self, job_id: int) -> Job:
        return self._transition(job_id, "job_retry", "retry")

    def _transition(self, job_id: int, query: str, operation: str) -> Job:
        """Run a single-job state change; explain a refusal as not-found or a bad state."""
        with self._tx(single=True) as cur:
            cur.execute(self.q[query], {"id": job_id})
            row = cur.fetchone()
            if row is not None:
                job = self._job(row)
                if job.state in (JobState.AVAILABLE, JobState.RUNNING):
                    # Wakes workers to claim it, or its own worker to act on the cancel.
                    self._notify(cur, {job.queue})
                return job
        current = self.job_get(job_id)
        raise InvalidTransition(job_id, str(current.state), operation)

    def job_rescue(self) -> list[int]:
        with self._tx(single=True, relaxed=True) as cur:
            cur.execute(self.q["job_rescue"])
            rows = cur.fetchall()
            queues = {str(row[1]) for row in rows if row[2] == JobState.AVAILABLE}
            if queues:
                self._notify(cur, queues)
        return sorted(int(row[0]) for row in rows)

    def job_prune(self, older_than: Mapping[JobState, float]) -> int:
        removed = 0
        with self._tx() as cur:
            for state, age in older_than.items():
                if state not in FINISHED:
                    raise ValueError(f"only finished states are pruned, not {state}")
                cur.execute(self.q["job_prune"], {"state": str(state), "age": age})
                removed += cur.rowcount
        return removed

    def queue_counts(self) -> dict[str, dict[str, int]]:
        counts: dict[str, dict[str, int]] = {}
        with self._read() as cur:
            cur.execute(self.q["queue_counts"])
            for queue, state, number in cur.fetchall():
                counts.setdefault(queue, {})[state] = int(number)
        return counts

    # -- schedules ------------------------------------------------------------------

    def schedule_sync(self, schedules: Sequence[ScheduleDef]) -> None:
        with self._tx() as cur:
            for sched in schedules:
                cur.execute(
                    self.q["schedule_upsert"],
                    {
                        "name": sched.name,
                        "cron": sched.cron,
                        "tz": sched.tz,
                        "task": sched.task,
                        "misfire": str(sched.misfire),
                    },
                )

    def schedule_fire(
        self, sched: ScheduleDef, job: NewJob, down_after: float, now: datetime | None = None
    ) -> list[int]:
        fired: list[int] = []
        with self._tx() as cur:
            cur.execute(self.q["schedule_lock"], {"name": sched.name})
            row = cur.fetchone()
            if row is None:
                raise ScheduleNotFound(sched.name)
            last, checked = self._time(row[0]), self._time(row[1])
            now = now or self._time(row[3])
            ticks, newest = sched.due(last, checked, now, down_after)
            if row[2]:  # paused: ticks pass without jobs
                ticks = []
            for tick in ticks:
                params = {"schedule": sched.name, "tick_at": self._time_param(tick)}
                cur.execute(self.q["cron_tick_insert"], params)
                if cur.fetchone() is None:
                    continue  # another scheduler fired this tick
                meta = orjson.dumps({"schedule": sched.name, "tick": tick.isoformat()}).decode()
                cur.execute(
                    self.q["job_insert"],
                    _new_job_params(replace(job, run_at=tick.timestamp(), meta=meta)),
                )
                job_id = int(cur.fetchone()[0])
                cur.execute(self.q["cron_tick_job"], {**params, "job_id": job_id})
                fired.append(job_id)
            cur.execute(
                self.q["schedule_advance"],
                {
                    "name": sched.name,
                    "last_tick": None if newest is None else self._time_param(newest),
                    "checked_at": self._time_param(max(now, checked)),
                    "last_job_id": fired[-1] if fired else None,
                },
            )
            if fired:
                self._notify(cur, {job.queue})
        return fired

    def schedule_pause(self, name: str, paused: bool) -> None:
        with self._tx() as cur:
            cur.execute(self.q["schedule_pause"], {"name": name, "paused": paused})
            if cur.fetchone() is None:
                raise ScheduleNotFound(name)

    def schedule_list(self) -> list[ScheduleState]:
        with self._read() as cur:
            cur.execute(self.q["schedule_list"])
            return [
                ScheduleState(
                    name=row[0],
                    cron=row[1],
                    tz=row[2],
                    task=row[3],
                    misfire=row[4],
                    paused=bool(row[5]),
                    last_tick=self._time(row[6]),
                    checked_at=self._time(row[7]),
                    last_job_id=None if row[8] is None else int(row[8]),
                    last_state=None if row[9] is None else JobState(row[9]),
                )
                for row in cur.fetchall()
            ]

    def cron_tick_prune(self, older_than: float) -> int:
        with self._tx() as cur:
            cur.execute(self.q["cron_tick_prune"], {"age": older_than})
            return int(cur.rowcount)

    # -- workers --------------------------------------------------------------------

    def worker_register(self, info: WorkerInfo) -> None:
        with self._tx() as cur:
            cur.execute(
                self.q["worker_register"],
                {
                    "id": info.id,
                    "host": info.host,
                    "pid": info.pid,
                    "queues": orjson.dumps(info.queues).decode(),
                    "concurrency": info.concurrency,
                    "wake": info.wake,
                },
            )

    def worker_heartbeat(self, worker: str) -> None:
        with self._tx(relaxed=True) as cur:
            cur.execute(self.q["worker_heartbeat"], {"id": worker})

    def worker_unregister(self, worker: str) -> None:
        with self._tx() as cur:
            cur.execute(self.q["worker_unregister"], {"id": worker})

    def worker_prune(self, older_than: float) -> int:
        with self._tx() as cur:
            cur.execute(self.q["worker_prune"], {"age": older_than})
            return int(cur.rowcount)

    def worker_list(self) -> list[WorkerInfo]:
        with self._read() as cur:
            cur.execute(self.q["worker_list"])
            return [
                WorkerInfo(
                    id=row[0],
                    host=row[1],
                    pid=int(row[2]),
                    queues=list(_json(row[3])),
                    concurrency=int(row[4]),
                    started_at=self._time(row[5]),
                    heartbeat_at=self._time(row[6]),
                    wake=row[7],
                )
                for row in cur.fetchall()
            ]

    # -- decoding -------------------------------------------------------------------

    def _job(self, row: Sequence[Any]) -> Job:
        opt = self._opt_time
        return Job(
            id=int(row[0]),
            task=row[1],
            queue=row[2],
            args=_json(row[3]),
            kwargs=_json(row[4]),
            priority=int(row[5]),
            state=JobState(row[6]),
            attempt=int(row[7]),
            max_attempts=int(row[8]),
            run_at=self._time(row[9]),
            enqueued_at=self._time(row[10]),
            started_at=opt(row[11]),
            finished_at=opt(row[12]),
            lease_until=opt(row[13]),
            worker=row[14],
            result=None if row[15] is None else _json(row[15]),
            errors=_json(row[16]),
            unique_key=row[17],
            idempotency_key=row[18],
            group_key=row[19],
            meta=_json(row[20]),
            progress=None if row[21] is None else _json(row[21]),
            cancel_requested=bool(row[22]),
        )

    def _opt_time(self, value: Any) -> datetime | None:
        return None if value is None else self._time(value)


def _new_job_params(job: NewJob) -> dict[str, Any]:
    return {
        "task": job.task,
        "queue": job.queue,
        "args": job.args,
        "kwargs": job.kwargs,
        "priority": job.priority,
        "max_attempts": job.max_attempts,
        "delay": job.delay,
        "run_at": job.run_at,
        "unique_key": job.unique_key,
        "idempotency_key": job.idempotency_key,
        "group_key": job.group_key,
        "meta": job.meta,
    }


def epoch_to_datetime(value: float) -> datetime:
    """Convert stored epoch seconds to an aware UTC datetime."""
    return datetime.fromtimestamp(value, UTC)


__all__ = ["JOB_COLUMNS", "WORKER_COLUMNS", "Queries", "SqlBackend", "epoch_to_datetime"]
