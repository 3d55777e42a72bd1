"""The events area: reading the change sequence by cursor, its tail, applications' own
events (notify), and pruning. The events of job changes are written in the transaction of
the change, by the statements that make it (PostgreSQL since its schema 21): on SQLite an
enqueue's by an insert trigger, on PostgreSQL the inserts' and those of the statements that
run alone (claims, outcomes) within the statement (`Queries.events`), every other change's
by `written` after it.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from offload.backends.base import Listener
from offload.backends.params import EventReadParams, NotifyParams
from offload.backends.sql.rows import Columns
from offload.core.events import Event, EventCursor

if TYPE_CHECKING:
    from offload.backends.sql.connector import SqlBackend


#: Events a prune deletes per transaction, at most: writers wait behind one chunk, never
#: behind a whole backlog (a first prune after a long time, a retention shortened).
PRUNE_CHUNK = 5000


class SqlEvents:
    """`EventStore` over a backend's `events.sql`."""

    def __init__(self, db: SqlBackend) -> None:
        self.db = db
        self.q = db.q["events"]
        #: "area.name" of every statement that writes its jobs' events itself.
        self._own = frozenset(f"{q.area}.{name}" for q in db.q.values() for name in q.events)

    def written(
        self, cur: Any, ids: Collection[int], kind: str | None = None, *, by: str = ""
    ) -> None:
        """In `cur`'s transaction, write the events of jobs `ids` that a statement of it
        just changed, unless that statement (`by`, "area.name") wrote them itself (see
        `Queries.events`: PostgreSQL's single-statement changes, which have no transaction
        to add a statement to). On PostgreSQL this also NOTIFYs event listeners.

        `kind` names the change where the job's state does not tell it (`requeued`,
        `progress`, `released`); without it the state does: running is `started`, any
        other state its own name (a `retrying` or `dead` event carries the last error).
        Call it once per kind, with only the ids the statement changed (its RETURNING),
        in any order: the events go in id order."""
        if ids and by not in self._own:
            cur.execute(
                self.q["written"], {"ids": orjson.dumps(sorted(ids)).decode(), "kind": kind}
            )

    def read(self, params: EventReadParams) -> list[Event]:
        # One statement per filter shape, each with its own index: a catch-all condition
        # (":job_id IS NULL OR job_id = :job_id") would hide the index from a generic plan.
        if params.job_id is not None:
            name = "read_job"
        elif params.channel is not None:
            name = "read_channel"
        else:
            name = "read_all"
        values = {
            "tx": params.after.tx,
            "position": params.after.position,
            "job_id": params.job_id,
            "queue": params.queue,
            "channel": params.channel,
            "limit": params.limit,
        }
        with self.db.read() as cur:
            cur.execute(self.q[name], values)
            rows = cur.fetchall()
            c = Columns.of(cur) if rows else None
        if c is None:
            return []
        return [self._event(c, row) for row in rows]

    def _event(self, c: Columns, row: Sequence[Any]) -> Event:
        job_id, attempt, data = row[c["job_id"]], row[c["attempt"]], row[c["data"]]
        return Event(
            cursor=EventCursor(int(row[c["tx"]]), int(row[c["position"]])),
            kind=row[c["kind"]],
            at=self.db.time(row[c["at"]]),
            job_id=None if job_id is None else int(job_id),
            task=row[c["task"]],
            queue=row[c["queue"]],
            channel=row[c["channel"]],
            state=row[c["state"]],
            attempt=None if attempt is None else int(attempt),
            data=None if data is None else orjson.loads(data),
        )

    def tail(self) -> EventCursor:
        with self.db.read() as cur:
            cur.execute(self.q["tail"])
            row = cur.fetchone()
        return EventCursor.START if row is None else EventCursor(int(row[0]), int(row[1]))

    def notify(self, params: NotifyParams) -> EventCursor:
        with self.db.tx() as cur:
            cur.execute(self.q["notify"], {"channel": params.channel, "data": params.data})
            tx, position = cur.fetchone()[:2]
        return EventCursor(int(tx), int(position))

    def prune(self, older_than: float) -> int:
        """Delete events older than `older_than` seconds, `PRUNE_CHUNK` per transaction."""
        removed = 0
        while True:
            with self.db.tx(single=True) as cur:
                cur.execute(self.q["prune"], {"age": older_than, "chunk": PRUNE_CHUNK})
                deleted = int(cur.rowcount)
            removed += deleted
            if deleted < PRUNE_CHUNK:
                return removed

    def signal(self) -> Listener:
        return self.db.event_listener()
