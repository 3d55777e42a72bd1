"""The schedules area: declared cron schedules, their progress, and one job per tick.

A tick becomes a job only if its `(schedule, tick)` row is inserted first, in the same
transaction that inserts the job and advances the schedule: however many schedulers race,
each tick fires once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import orjson

from offload.backends.params import ScheduleFireParams
from offload.backends.sql.rows import Columns, schedules_from
from offload.core.errors import ScheduleNotFound
from offload.core.records import ScheduleState
from offload.core.schedule import ScheduleDef

if TYPE_CHECKING:
    from offload.backends.sql.connector import SqlBackend


class SqlSchedules:
    """`ScheduleStore` over a backend's `schedules.sql`."""

    def __init__(self, db: SqlBackend) -> None:
        self.db = db
        self.q = db.q["schedules"]

    def sync(self, schedules: Sequence[ScheduleDef]) -> None:
        with self.db.tx() as cur:
            for sched in schedules:
                cur.execute(
                    self.q["upsert"],
                    {
                        "name": sched.name,
                        "cron": sched.cron,
                        "tz": sched.tz,
                        "task": sched.task,
                        "misfire": str(sched.misfire),
                    },
                )

    def fire(self, params: ScheduleFireParams) -> list[int]:
        sched, db = params.schedule, self.db
        fired: list[int] = []
        with db.tx() as cur:
            cur.execute(self.q["lock"], {"name": sched.name})
            rows = cur.fetchall()
            if not rows:
                raise ScheduleNotFound(sched.name)
            row, c = rows[0], Columns.of(cur)
            last, checked = db.time(row[c["last_tick"]]), db.time(row[c["checked_at"]])
            now = params.now or db.time(row[c["db_now"]])
            ticks, newest = sched.due(last, checked, now, params.down_after)
            if row[c["paused"]]:  # ticks pass without jobs
                ticks = []
            for tick in ticks:
                values = {"schedule": sched.name, "tick_at": db.time_param(tick)}
                cur.execute(self.q["tick_insert"], values)
                if cur.fetchone() is None:
                    continue  # another scheduler fired this tick
                meta = orjson.dumps({"schedule": sched.name, "tick": tick.isoformat()}).decode()
                spec = replace(params.spec, run_at=tick.timestamp(), meta=meta)
                (job_id,) = db.jobs.insert_in(cur, spec, [params.payload]).ids
                cur.execute(self.q["tick_job"], {**values, "job_id": job_id})
                fired.append(job_id)
            cur.execute(
                self.q["advance"],
                {
                    "name": sched.name,
                    "last_tick": None if newest is None else db.time_param(newest),
                    "checked_at": db.time_param(max(now, checked)),
                    "last_job_id": fired[-1] if fired else None,
                },
            )
        return fired

    def pause(self, name: str, paused: bool) -> None:
        with self.db.tx() as cur:
            cur.execute(self.q["pause"], {"name": name, "paused": paused})
            if cur.fetchone() is None:
                raise ScheduleNotFound(name)

    def list(self) -> list[ScheduleState]:
        with self.db.read() as cur:
            cur.execute(self.q["list"])
            return schedules_from(cur, cur.fetchall(), self.db.time)

    def prune_ticks(self, older_than: float) -> int:
        with self.db.tx() as cur:
            cur.execute(self.q["tick_prune"], {"age": older_than})
            return int(cur.rowcount)
