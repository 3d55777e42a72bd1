"""`SqlBackend`: what both SQL backends share below the areas: transactions, time, wake-ups.

A backend subclasses it with connections and its clock format; the areas (`SqlJobs`,
`SqlClaims`, ...) run the backend's named queries through it. Whenever a statement makes
jobs available, its area calls `wake` with the queues concerned: the one interface by which
workers hear of new work. SQLite sends a datagram to each worker once the commit is visible;
PostgreSQL NOTIFYs in the same transaction, delivered at commit, and for inserts the insert
query itself does it, so that an enqueue pays no second round trip.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import Collection, Mapping
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, ClassVar

from offload.backends.base import Listener
from offload.backends.sql.admission import Admission
from offload.backends.sql.claims import SqlClaims
from offload.backends.sql.events import SqlEvents
from offload.backends.sql.jobs import SqlJobs
from offload.backends.sql.leaders import SqlLeaders
from offload.backends.sql.queries import Queries
from offload.backends.sql.queues import SqlQueues
from offload.backends.sql.schedules import SqlSchedules
from offload.backends.sql.schema import SqlSchema
from offload.backends.sql.stats import SqlStats
from offload.backends.sql.sweep import SqlSweep
from offload.backends.sql.tokens import SqlTokens
from offload.backends.sql.topics import SqlTopics
from offload.backends.sql.workers import SqlWorkers
from offload.backends.sql.workflows import SqlWorkflows

#: The areas every SQL backend has, one `.sql` file each.
AREAS = (
    "connector",
    "schema",
    "jobs",
    "claims",
    "schedules",
    "workers",
    "queues",
    "sweep",
    "tokens",
    "events",
    "workflows",
    "topics",
    "stats",
    "leaders",
)


class SqlBackend(ABC):
    """Connections, transactions and wake-ups; the storage areas hang off it."""

    name: ClassVar[str]
    package: ClassVar[str]
    parallel_writes: ClassVar[bool]
    #: Whether each statement reads the clock anew (SQLite), not once per transaction
    #: (PostgreSQL's now()).
    clock_per_statement: ClassVar[bool]
    location: str

    def __init__(self, macros: Mapping[str, str], pyformat: bool) -> None:
        self.q = _queries(self.package, tuple(macros.items()), pyformat)
        self.schema = SqlSchema(self)
        self.jobs = SqlJobs(self)
        self.claims = SqlClaims(self)
        self.schedules = SqlSchedules(self)
        self.workers = SqlWorkers(self)
        self.queues = SqlQueues(self)
        self.admission = Admission(self)
        self.sweep = SqlSweep(self)
        self.tokens = SqlTokens(self)
        self.events = SqlEvents(self)
        self.workflows = SqlWorkflows(self)
        self.topics = SqlTopics(self)
        self.stats = SqlStats(self)
        self.leaders = SqlLeaders(self)

    # -- what each backend supplies -------------------------------------------------

    @abstractmethod
    def tx(
        self, conn: Any = None, *, single: bool = False, relaxed: bool = False
    ) -> AbstractContextManager[Any]:
        """A write transaction yielding a DB-API cursor; on `conn`, the caller's transaction.

        `single` promises one statement, atomic by itself: PostgreSQL
        then skips BEGIN and COMMIT. `relaxed` marks a worker's bookkeeping (claims,
        outcomes, leases): its commit need not wait for the disk, because losing it in a
        power failure only makes a job run again, as at-least-once delivery allows. Later
        durable commits flush it anyway (the log is written in order).
        """

    @abstractmethod
    def read(self) -> AbstractContextManager[Any]:
        """A cursor for reads (may be the write connection)."""

    @abstractmethod
    def time(self, value: Any) -> datetime:
        """Convert a stored time to an aware UTC datetime."""

    @abstractmethod
    def time_param(self, value: datetime | None) -> Any:
        """Convert an aware datetime (or None) to the form queries take."""

    @abstractmethod
    def wake(self, cur: Any, queues: Collection[str], *, inserted: bool = False) -> None:
        """Jobs of `queues` became available in `cur`'s transaction (`inserted`: by an
        insert): wake workers once it commits, and never before (they would find nothing)."""

    def enqueuing(self, conn: Any = None, *, single: bool = False) -> AbstractContextManager[Any]:
        """`tx` for an enqueue: its wake-ups may go out after its commit rather than in it
        (PostgreSQL overrides: see `defers_wake`)."""
        return self.tx(conn, single=single)

    def defers_wake(self, cur: Any) -> bool:
        """Whether the inserts on `cur` leave their wake-ups to `wake`, to be sent after the
        commit, instead of NOTIFYing in their own statement (PostgreSQL's `enqueuing`)."""
        return False

    @abstractmethod
    def apply_migration(self, version: int, sql: str) -> None:
        """Run one migration script and record its version, atomically."""

    @abstractmethod
    def listener(self) -> Listener: ...

    @abstractmethod
    def event_listener(self) -> Listener:
        """A channel readable when events may have been committed (`EventStore.signal`)."""

    @abstractmethod
    def close(self) -> None: ...

    def inserted_id(self, cur: Any) -> int:
        """The id of the job `insert_one(_keyed)` just stored on `cur`, 0 if it stored none (a
        taken idempotency key): the statement RETURNs it (SQLite overrides)."""
        row = cur.fetchone()
        return 0 if row is None else int(row[0])

    def inserted_ids(self, cur: Any, count: int) -> list[int]:
        """The ids of the `count` jobs `insert_many` just stored on `cur`, in payload order,
        none if it stored none: the statement RETURNs them, in no promised order (SQLite
        overrides)."""
        return sorted([int(row[0]) for row in cur.fetchall()])

    def storable_json(self, text: str) -> str:
        """JSON text as this database's JSON columns accept it (PostgreSQL overrides)."""
        return text

    # -- shared ---------------------------------------------------------------------

    def now(self) -> datetime:
        """The database's clock."""
        return self.time(self.now_param())

    def now_param(self) -> Any:
        """The database's clock as it reads it, fit for a `:now` parameter: a round trip
        through a datetime may round SQLite's epoch seconds below a time just stored."""
        with self.read() as cur:
            cur.execute(self.q["connector"]["now"])
            return cur.fetchone()[0]


@functools.cache
def _queries(
    package: str, macros: tuple[tuple[str, str], ...], pyformat: bool
) -> dict[str, Queries]:
    """Every area's queries of one backend, parsed once per process."""
    return {area: Queries.load(package, area, dict(macros), pyformat) for area in AREAS}
