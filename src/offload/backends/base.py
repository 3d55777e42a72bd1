"""The storage protocols: one small protocol per area, and the `Backend` that holds them.

Internal API. The App, the worker and the scheduler reach storage only through these
operations, each atomic in the database. Areas: `schema`, `jobs` (insert, read, admin),
`claims` (a worker's leases: claim, heartbeat, progress, finish, release, rescue),
`schedules` (cron), `workers` (the registry), `queues` (policies and task limits) and
`sweep` (shedding and bringing back shed jobs), `tokens` (API tokens) and `events` (the
change sequence of jobs, and applications' own events), `workflows` (jobs that wait for
jobs) and `topics` (logs of messages and their consumer groups), `stats` (the events rolled up
per minute, for charts), `leaders` (leases of the maintenance duties, with their terms).
Payloads cross this boundary as JSON text, already validated by the core serializer;
operations taking several values take a params dataclass from `offload.backends.params`.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Protocol

from offload.backends.params import (
    Claimed,
    ClaimParams,
    ElectParams,
    EventReadParams,
    FinishParams,
    GroupClaimParams,
    Heartbeat,
    HeartbeatParams,
    Inserted,
    JobFilter,
    JobIdsParams,
    JobInsertParams,
    JobListParams,
    JobPruneParams,
    JobRetryManyParams,
    JobRetryParams,
    MessageReadParams,
    NotifyParams,
    ParentsRead,
    ParentsReadParams,
    ProgressReport,
    PublishParams,
    PumpParams,
    QueueChangeParams,
    ReleaseParams,
    ReplayParams,
    RescueParams,
    ResignParams,
    ResultsPageParams,
    RetentionParams,
    ScheduleFireParams,
    StatsReadParams,
    SubscribeParams,
    SweepReadmitParams,
    SweepTakeParams,
    TokenCreateParams,
    TokenFound,
    WorkflowInserted,
    WorkflowInsertParams,
    WorkflowListParams,
    WorkflowRecord,
    WorkflowSummary,
)
from offload.core.errors import OffloadError
from offload.core.events import Event, EventCursor
from offload.core.flow import QueuePolicy, TaskLimits
from offload.core.job import Job
from offload.core.records import (
    JobChange,
    Leadership,
    QueueFigures,
    QueueState,
    ScheduleState,
    StateCensus,
    WorkerCensus,
    WorkerInfo,
)
from offload.core.schedule import ScheduleDef
from offload.core.stats import Tally
from offload.core.tokens import TokenRecord
from offload.core.topics import Message, TopicState


class Listener(Protocol):
    """A wake-up channel: readable (by `select`) when jobs may have become available (or,
    from `EventStore.signal`, when events may have been added)."""

    @property
    def address(self) -> str | None:
        """Where producers send wake-ups, kept in the worker registry (None: not needed)."""
        ...

    def fileno(self) -> int:
        """The descriptor to wait on."""
        ...

    def drain(self) -> None:
        """Consume pending wake-ups so the descriptor stops being readable."""
        ...

    def close(self) -> None:
        """Release the channel."""
        ...


class SchemaStore(Protocol):
    """The schema's version and its migrations."""

    @property
    def target(self) -> int:
        """The schema version this code needs."""
        ...

    def version(self) -> int:
        """The version recorded in the database (0 before the first migration)."""
        ...

    def migrate(self) -> int:
        """Apply pending migrations; return the version reached."""
        ...

    def check(self) -> None:
        """Raise SchemaMismatch unless the schema is exactly the version this code needs."""
        ...


class JobStore(Protocol):
    """Jobs as producers and operators see them: insert, read, cancel, retry, prune, and
    the bulk forms of cancel and retry, and purge."""

    def insert(self, params: JobInsertParams) -> Inserted:
        """Store jobs in one transaction; return each payload's job id, by position (a
        payload whose unique or idempotency key is held gets the id of the job that holds
        it, and counts as a duplicate)."""
        ...

    def groupable(self, params: JobInsertParams) -> bool:
        """Whether this insert may share a transaction with other callers' (group commit)."""
        ...

    def insert_group(self, group: Sequence[JobInsertParams]) -> list[Inserted | OffloadError]:
        """Many callers' inserts (none with its own `conn`) in one transaction, by position:
        each one's ids, or the error that refused it alone (its rows undone, the others
        kept). A failure of the transaction itself raises, having stored nothing."""
        ...

    def get(self, job_id: int) -> Job:
        """One job by id; raise JobNotFound."""
        ...

    def retry_many(self, params: JobRetryManyParams) -> list[JobChange]:
        """`retry` every matching dead, cancelled or shed job in one statement."""
        ...

    def cancel_many(self, where: JobFilter) -> list[JobChange]:
        """`cancel` every matching queued or running job in one statement (running ones
        stay running, asked to stop)."""
        ...

    def purge(self, where: JobFilter) -> int:
        """Delete every matching succeeded, dead, cancelled or shed job in one statement;
        return the count."""
        ...

    def list(self, params: JobListParams) -> list[Job]:
        """Jobs matching the filter, newest first."""
        ...

    def ids(self, params: JobIdsParams) -> builtins.list[int]:
        """Ids of the jobs matching the filter in the states given, newest first (a bulk
        walk's keyset page)."""
        ...

    def count(self, where: JobFilter) -> int:
        """Number of jobs matching the filter."""
        ...

    def counts(self) -> dict[str, dict[str, int]]:
        """Number of jobs per queue and state."""
        ...

    def census(self) -> builtins.list[StateCensus]:
        """Jobs per queue and state with each group's oldest due wait, in one statement
        (what a metrics scrape reads)."""
        ...

    def cancel(self, job_id: int) -> Job:
        """Cancel a queued job, or ask a running one to stop; raise on a finished job."""
        ...

    def retry(self, params: JobRetryParams) -> Job:
        """Run a dead, cancelled or shed job again with a fresh attempt budget."""
        ...

    def prune(self, params: JobPruneParams) -> int:
        """Delete finished jobs past their age; return the count."""
        ...


class ClaimStore(Protocol):
    """A worker's side of jobs: leases, and what it records about the attempts it holds."""

    def claim(self, params: ClaimParams) -> list[Job]:
        """Atomically take due jobs of one queue, highest priority first (`take`'s jobs)."""
        ...

    def take(self, params: ClaimParams) -> Claimed:
        """Atomically take due jobs of one queue that every limit in force allows (a paused
        queue gives none), and say when a job a rate limit held back can next start."""
        ...

    def take_group(self, params: GroupClaimParams) -> Claimed:
        """Atomically take due jobs of one group of a batch task (the ready group whose
        oldest job sorts first; none from a paused or rate-limited queue, no more than a
        queue concurrency limit has room for), or say when the next group is ready."""
        ...

    def heartbeat(self, params: HeartbeatParams) -> Heartbeat:
        """Extend leases in one statement; report those lost and held jobs to cancel."""
        ...

    def progress(self, worker: str, reports: Sequence[ProgressReport]) -> None:
        """Store progress of attempts this worker holds (others are ignored)."""
        ...

    def finish(self, params: FinishParams) -> list[int]:
        """Record outcomes of attempts held; return the ids whose lease was lost."""
        ...

    def release(self, params: ReleaseParams) -> int:
        """Give held jobs back to `available` without spending their attempt."""
        ...

    def rescue(self, params: RescueParams) -> list[int]:
        """Put running jobs whose lease ran out back to available (or dead); return ids."""
        ...


class ScheduleStore(Protocol):
    """Periodic schedules and the one-row-per-tick guard."""

    def sync(self, schedules: Sequence[ScheduleDef]) -> None:
        """Record declared schedules, keeping their pause state and progress."""
        ...

    def fire(self, params: ScheduleFireParams) -> list[int]:
        """Enqueue one job per due tick, exactly once per tick whatever the number of
        schedulers; return the new job ids."""
        ...

    def pause(self, name: str, paused: bool) -> None:
        """Pause or resume a schedule; raise ScheduleNotFound."""
        ...

    def list(self) -> list[ScheduleState]:
        """Every stored schedule with its progress and the state of its last job."""
        ...

    def prune_ticks(self, older_than: float) -> int:
        """Forget tick records older than the given seconds (beyond any catch-up window)."""
        ...


class WorkerStore(Protocol):
    """The worker registry."""

    def register(self, info: WorkerInfo) -> None:
        """Record (or refresh) a worker."""
        ...

    def heartbeat(self, worker: str, rates: Mapping[str, float] | None = None) -> None:
        """Mark a worker alive now; with `rates` ({queue: completions per second over a
        recent window}), store them too: a queue's drain rate is their sum over live
        workers (None keeps the stored ones)."""
        ...

    def unregister(self, worker: str) -> None:
        """Remove a worker at its clean stop."""
        ...

    def prune(self, older_than: float) -> int:
        """Forget workers silent for longer than the given seconds; return how many."""
        ...

    def list(self) -> list[WorkerInfo]:
        """Every registered worker."""
        ...

    def census(self, lost_after: float) -> WorkerCensus:
        """Registered workers counted as alive (a heartbeat within `lost_after` seconds, by
        the database clock) or lost, in one statement."""
        ...


class QueueStore(Protocol):
    """Queue policies and task limits, as declared in code and changed at run time."""

    def declare(
        self, policies: Mapping[str, QueuePolicy], limits: Mapping[str, TaskLimits | None]
    ) -> None:
        """Write the code's queue policies (a run-time change stays until the code declares
        something different) and task limits (None: the task has none any more)."""
        ...

    def set(self, name: str, policy: QueuePolicy) -> None:
        """Replace a queue's policy at run time; a new `aging` re-orders its waiting jobs."""
        ...

    def change(self, params: QueueChangeParams) -> QueuePolicy:
        """Change some of a queue's policy at run time, read and written in one transaction
        (concurrent changes of different settings all land); returns the new policy.
        Raises `ValidationError` for a bad setting, storing nothing."""
        ...

    def pause(self, name: str, paused: bool) -> None:
        """Stop (or resume) claims from a queue; enqueues still land."""
        ...

    def get(self, name: str) -> QueueState | None:
        """A queue's stored policy, or None when it has none."""
        ...

    def list(self) -> list[QueueState]:
        """Every stored queue policy, by name."""
        ...

    def task_limits(self) -> dict[str, TaskLimits]:
        """Every stored task limit, by task name."""
        ...

    def stats(self, lost_after: float) -> builtins.list[QueueFigures]:
        """Per queue with unfinished jobs or a live worker's rate: the oldest due job's wait,
        jobs held back by a full concurrency limit, and the drain rate of the workers
        heard from within `lost_after` seconds."""
        ...


class SweepStore(Protocol):
    """Shedding a queue's waiting low-priority jobs under load, and bringing them back (the
    scheduler's sweep). Each operation is atomic: replicas may run them at once."""

    def shed(self, queue: str) -> list[int]:
        """If `queue` has more jobs not started than its `shed_depth`, move its waiting jobs
        of priority below `shed_priority` to shed; return their ids."""
        ...

    def readmit(self, params: SweepReadmitParams) -> list[JobChange]:
        """Make a queue's oldest shed jobs available (or scheduled) again, as many as fit
        under its shed watermark, once it is at or under its resume watermark."""
        ...

    def take(self, params: SweepTakeParams) -> list[Job]:
        """Lease shed jobs of a task to a sweeper (state running) for its sweep hook; the
        sweeper ends them with `ClaimStore.finish`, or gives them back with `untake`."""
        ...

    def untake(self, params: ReleaseParams) -> int:
        """Give taken jobs back to shed without spending their attempt; return how many."""
        ...


class TokenStore(Protocol):
    """API tokens, by name, found by their non-secret lookup part."""

    def create(self, params: TokenCreateParams) -> bool:
        """Store a token; False (storing nothing) when its name is taken."""
        ...

    def find(self, lookup: str) -> TokenFound | None:
        """The token stored under a lookup part, or None; one indexed read."""
        ...

    def touch(self, lookup: str) -> None:
        """Record a use of the token now, unless one was recorded within the last minute."""
        ...

    def list(self) -> list[TokenRecord]:
        """Every stored token, by name."""
        ...

    def revoke(self, name: str) -> bool:
        """Delete a token; False when no token has that name."""
        ...

    def any(self) -> bool:
        """Whether any token is stored."""
        ...


class EventStore(Protocol):
    """The change sequence: an event per change of a job's state (written in the
    transaction of the change, by the statements that make it), and applications' events
    on channels."""

    def read(self, params: EventReadParams) -> builtins.list[Event]:
        """Committed events after a cursor, oldest first; a reader polling with the cursor
        of the last event it got never skips one and never gets one twice."""
        ...

    def tail(self) -> EventCursor:
        """The cursor of the newest event readable now (START when there is none)."""
        ...

    def notify(self, params: NotifyParams) -> EventCursor:
        """Store an application's event on a channel; return its cursor."""
        ...

    def prune(self, older_than: float) -> int:
        """Delete events older than the given seconds; return the count."""
        ...

    def signal(self) -> Listener:
        """A channel that becomes readable when events may have been added (a hint)."""
        ...


class StatsStore(Protocol):
    """Roll-ups of the events per minute and queue, for charts (`offload.core.stats`)."""

    def roll(self, limit: int = ...) -> int:
        """Add every event not yet rolled up to its bucket, each exactly once however many
        processes roll at a time, `limit` events per transaction; return how many."""
        ...

    def read(self, params: StatsReadParams) -> builtins.list[tuple[float, Tally]]:
        """The stored buckets added up per `size` seconds: (start in epoch seconds, tally),
        oldest first, slots without a bucket left out."""
        ...

    def prune(self, older_than: float) -> int:
        """Delete buckets older than `older_than` seconds; return how many."""
        ...


class WorkflowStore(Protocol):
    """Jobs that wait for jobs (`offload.core.workflow`). The release of a waiting job is
    not an operation here: every statement that ends a job (an outcome, a rescue, a cancel,
    a supersede) releases or fails its waiting children in its own transaction."""

    def insert(self, params: WorkflowInsertParams) -> WorkflowInserted:
        """Store every node and edge in one transaction, or nothing: an edge to a job id
        that does not exist raises UnknownDependency naming it."""
        ...

    def parents(self, params: ParentsReadParams) -> dict[int, ParentsRead]:
        """How each child's parents ended (and their results), for children that start."""
        ...

    def results(self, params: ResultsPageParams) -> builtins.list[tuple[int, str | None]]:
        """A page of (edge position, result JSON text) of a child's parents, in order."""
        ...

    def get(self, workflow_id: int) -> WorkflowRecord:
        """A stored workflow with every node; raises WorkflowNotFound."""
        ...

    def list(self, params: WorkflowListParams) -> builtins.list[WorkflowSummary]:
        """Workflows newest first, with their progress."""
        ...

    def cancel(self, workflow_id: int) -> builtins.list[JobChange]:
        """End every unfinished node `cancelled` (a running one is asked to stop); raises
        WorkflowNotFound."""
        ...


class TopicStore(Protocol):
    """Topics (`offload.core.topics`): an ordered log per topic, stored once, and consumer
    groups, each a cursor whose next messages a pump hands to the group's queue as jobs."""

    def publish(self, params: PublishParams) -> builtins.list[int]:
        """Append messages in one transaction; return their offsets. Offsets of a topic are
        dense and given in commit order: a reader never passes one still to appear."""
        ...

    def read(self, params: MessageReadParams) -> builtins.list[Message]:
        """Retained messages after an offset, oldest first."""
        ...

    def subscribe(self, params: SubscribeParams) -> None:
        """Store a group unless it exists (its cursor placed by `start`); an existing group
        keeps its cursor. Raises OffsetOutOfRange for a start past the topic's end."""
        ...

    def pump(self, params: PumpParams) -> int:
        """Insert the group's next messages as jobs of its queue and move its cursor past
        them, in one transaction under the group's lock; return how many. An ordered group
        stops before the first message whose key a delivery not yet over holds. Raises
        GroupNotFound."""
        ...

    def replay(self, params: ReplayParams) -> int:
        """Move a group's cursor to an offset or a time (the messages after it are
        delivered again); return the cursor. Raises GroupNotFound or OffsetOutOfRange,
        moving nothing."""
        ...

    def list(self) -> builtins.list[TopicState]:
        """Every topic with its size, retention and groups (cursor, lag, dead, skipped)."""
        ...

    def retain(self, params: RetentionParams) -> None:
        """Set a topic's retention (storing the topic if new)."""
        ...

    def prune(self, now: datetime | None = None) -> int:
        """Delete messages past their topic's retention, by time (as of `now`, default the
        database's) and count; a group that had not had them yet moves past them and counts
        them as skipped. Returns how many were deleted."""
        ...


class ShardStore(Protocol):
    """A database's side of sharding (docs/sharding.md): fences of the queues it gave away
    (an insert into one is refused in the database, naming the new shard), and the range
    of its job and workflow ids."""

    def moving(self) -> AbstractContextManager[None]:
        """Hold the lock of moves (on the home shard) until the block ends: a move waits
        for one in flight, so two never fence and unfence the same shards at once."""
        ...

    def fence(self, queue: str, shard: str) -> None:
        """Refuse every insert into `queue` from the commit on, naming `shard`; waits for
        inserts in flight to commit first."""
        ...

    def unfence(self, queue: str) -> None:
        """Accept inserts into `queue` again (it moved back here)."""
        ...

    def fences(self) -> dict[str, str]:
        """Every fenced queue, with the shard it moved to."""
        ...

    def set_floor(self, floor: int) -> None:
        """Give job and workflow ids from `floor` on, unless they are past it already."""
        ...

    def ids(self) -> tuple[int | None, int, int | None, int]:
        """The lowest stored job id, the next one given (about), and the same for
        workflows: what the range check reads."""
        ...

    def unfinished(self, queue: str) -> int:
        """Jobs of `queue` not in a final state."""
        ...


class LeaderStore(Protocol):
    """Leases of the maintenance duties: one holder at a time per name, chosen and timed by
    the database's clock, each new holding under a greater term (a fencing token)."""

    def elect(self, params: ElectParams) -> Leadership:
        """Renew the lease if the holder holds it in the term given and it has not expired,
        or take it with the next term if it has expired or was never taken, atomically;
        return it as it stands after (held by the caller or not)."""
        ...

    def read(self, name: str) -> Leadership | None:
        """The lease as it stands, None if never taken."""
        ...

    def resign(self, params: ResignParams) -> bool:
        """End the holder's term now if it still holds it; return whether it did."""
        ...


class Backend(Protocol):
    """One database: its areas, its clock and its wake-up channel."""

    @property
    def schema(self) -> SchemaStore: ...
    @property
    def jobs(self) -> JobStore: ...
    @property
    def claims(self) -> ClaimStore: ...
    @property
    def schedules(self) -> ScheduleStore: ...
    @property
    def workers(self) -> WorkerStore: ...
    @property
    def queues(self) -> QueueStore: ...
    @property
    def sweep(self) -> SweepStore: ...
    @property
    def tokens(self) -> TokenStore: ...
    @property
    def events(self) -> EventStore: ...
    @property
    def stats(self) -> StatsStore: ...
    @property
    def workflows(self) -> WorkflowStore: ...
    @property
    def topics(self) -> TopicStore: ...
    @property
    def leaders(self) -> LeaderStore: ...

    @property
    def name(self) -> str:
        """Short name used in messages and metrics, e.g. "sqlite"."""
        ...

    @property
    def location(self) -> str:
        """Where the data lives, with any password removed; for messages."""
        ...

    @property
    def parallel_writes(self) -> bool:
        """Whether transactions from two threads run at once (PostgreSQL) or take turns on
        one lock (SQLite); the worker writes outcomes from a thread of their own only if so."""
        ...

    def now(self) -> datetime:
        """The database's clock, the one every cross-process time comparison uses."""
        ...

    def listener(self) -> Listener:
        """A channel that becomes readable when jobs are enqueued or made available."""
        ...

    def limit_connections(self, limit: int) -> None:
        """Hold at most `limit` database connections from now on, not counting a wake-up
        channel's (SQLite holds one per process whatever the limit)."""
        ...

    def close(self) -> None:
        """Close connections; the backend must not be used afterwards."""
        ...


__all__ = [
    "Backend",
    "ClaimStore",
    "EventStore",
    "JobStore",
    "LeaderStore",
    "Listener",
    "QueueStore",
    "ScheduleStore",
    "SchemaStore",
    "ShardStore",
    "SweepStore",
    "TokenStore",
    "TopicStore",
    "WorkerStore",
    "WorkflowStore",
]
