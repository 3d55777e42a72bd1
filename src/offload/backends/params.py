"""The parameters and results of storage operations: small frozen dataclasses.

Internal API, like the protocols in `offload.backends.base`. Every operation that takes more
than one value takes one of these, so that adding a field (a key, a limit, a clock) changes
no call site. Times named `now` override the database's clock, for tests and replays.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from offload.core.events import EventCursor, JSONValue
from offload.core.flow import QueuePolicy
from offload.core.job import Job, JobSpec, Payload
from offload.core.schedule import ScheduleDef
from offload.core.states import JobState
from offload.core.tokens import Scope
from offload.core.topics import Start
from offload.core.workflow import Edge, Node, ParentOutcome

# -- jobs -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JobInsertParams:
    """Jobs to store in one statement: what they share, and each one's payload.

    `conn` stores them in the caller's own transaction (transactional enqueue).
    """

    spec: JobSpec
    payloads: Sequence[Payload]
    conn: Any = None


@dataclass(frozen=True, slots=True)
class Inserted:
    """What an insert did, by position: each payload's job id, and the positions that
    stored nothing and answered with an existing job (a held unique or idempotency key, or
    a unique key repeated within the batch)."""

    ids: list[int]
    duplicates: frozenset[int] = frozenset()


@dataclass(frozen=True, slots=True)
class JobFilter:
    """Which jobs a listing or a bulk operation (`retry_many`, `cancel_many`, `purge`)
    takes: those matching every part given. `ids` None means any id; an empty `ids` matches nothing.
    `before`/`after` bound `enqueued_at` (before: strictly earlier; after: at or later).
    `error_type`: the exception type name of the job's latest error entry, exactly as
    stored (`ValueError`, `myapp.errors.Timeout`). `args_contains`: a JSON value contained
    (PostgreSQL's jsonb `@>`, `offload.core.containment`) in one positional argument, or,
    being an object, in the keyword arguments. The operation itself narrows to the states
    it accepts."""

    ids: Sequence[int] | None = None
    queue: str | None = None
    state: JobState | None = None
    task: str | None = None
    before: datetime | None = None
    after: datetime | None = None
    error_type: str | None = None
    args_contains: JSONValue | None = None


@dataclass(frozen=True, slots=True)
class JobListParams:
    """Filter and keyset paging for `JobStore.list`: newest first, ids below `before_id`."""

    where: JobFilter = field(default_factory=JobFilter)
    before_id: int | None = None
    limit: int = 50


@dataclass(frozen=True, slots=True)
class JobIdsParams:
    """`JobStore.ids`: the ids of jobs matching `where` in one of `states`, newest first,
    below `before_id`, at most `limit` (a bulk walk's next batch)."""

    where: JobFilter
    states: frozenset[JobState]
    before_id: int | None = None
    limit: int = 1000


@dataclass(frozen=True, slots=True)
class JobRetryParams:
    """Run a dead, cancelled or shed job again with `budget` more attempts (None: as many as
    its `max_attempts`). Attempt numbers keep counting, so the error list reads in order."""

    job_id: int
    budget: int | None = None


@dataclass(frozen=True, slots=True)
class JobRetryManyParams:
    """Retry every dead, cancelled or shed job matching `where`; `budgets` maps a task name
    to its attempt budget (as `JobRetryParams.budget`; tasks not in it keep max_attempts)."""

    where: JobFilter
    budgets: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class JobPruneParams:
    """Delete finished jobs of each state older than the given seconds."""

    older_than: Mapping[JobState, float]


# -- claims -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Lease:
    """A worker's hold on one attempt of a job: the fencing token for every later write."""

    id: int
    attempt: int


@dataclass(frozen=True, slots=True)
class ClaimParams:
    """Take up to `limit` due jobs of `queue` for `worker`, each leased for `lease` seconds."""

    worker: str
    queue: str
    limit: int
    lease: float
    now: datetime | None = None


@dataclass(frozen=True, slots=True)
class GroupClaimParams:
    """Take up to `size` due jobs of batch task `task` in `queue`, all of one group, for
    `worker`: the group whose oldest job sorts first among those ready (`size` due jobs, or
    a job due for `max_wait` seconds). Each is leased for `lease` seconds."""

    worker: str
    queue: str
    task: str
    size: int
    max_wait: float
    lease: float
    now: datetime | None = None


@dataclass(frozen=True, slots=True)
class Claimed:
    """What a claim took; `wait`: seconds until a job a rate limit held back may start, or
    a batch group waiting for more jobs goes anyway (None: nothing held back by time; a
    finished job or a wake-up frees the rest)."""

    jobs: list[Job]
    wait: float | None = None


@dataclass(frozen=True, slots=True)
class HeartbeatParams:
    """Renew `leases` held by `worker` for another `lease` seconds."""

    worker: str
    leases: Sequence[Lease]
    lease: float
    now: datetime | None = None


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """What renewing leases learned: leases lost, and held jobs someone asked to cancel."""

    lost: list[int]
    cancel: list[int]


@dataclass(frozen=True, slots=True)
class ProgressReport:
    """A running attempt's progress, as its task reported it."""

    id: int
    attempt: int
    fraction: float
    message: str | None


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one attempt ended.

    `state` is succeeded, retrying (then `delay` seconds until the next attempt), dead or
    cancelled; `error` is the JSON text of one error entry, `result` the JSON text of a result.
    `publish`: messages (topic, key, value JSON text) published in the transaction that
    records the outcome, if it is recorded (a pipeline stage's output).
    """

    id: int
    attempt: int
    state: JobState
    result: str | None = None
    error: str | None = None
    delay: float = 0.0
    publish: tuple[tuple[str, str | None, str], ...] = ()


@dataclass(frozen=True, slots=True)
class FinishParams:
    """Record `outcomes` of attempts `worker` holds."""

    worker: str
    outcomes: Sequence[Outcome]
    now: datetime | None = None


@dataclass(frozen=True, slots=True)
class ReleaseParams:
    """Give `leases` held by `worker` back without spending their attempt."""

    worker: str
    leases: Sequence[Lease]


@dataclass(frozen=True, slots=True)
class RescueParams:
    """Put running jobs whose lease ran out (by `now`, default the database's) back."""

    now: datetime | None = None


# -- leaders ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ElectParams:
    """Renew `holder`'s lease `name` if it holds it in `term` (None: it holds none), or
    take it with the next term if it is free, for `ttl` seconds by the database's clock."""

    name: str
    holder: str
    term: int | None
    ttl: float


@dataclass(frozen=True, slots=True)
class ResignParams:
    """End `holder`'s `term` of the lease `name` now (at a clean stop)."""

    name: str
    holder: str
    term: int


# -- sweep ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SweepReadmitParams:
    """Re-admit `queue`'s oldest shed jobs if it is at or under its resume watermark, as many
    as fit under its shed watermark; jobs of the `hooked` tasks are left to their hook."""

    queue: str
    hooked: Sequence[str] = ()
    now: datetime | None = None


@dataclass(frozen=True, slots=True)
class SweepTakeParams:
    """Lease up to `limit` of `queue`'s oldest shed jobs of `task` to `worker` for `lease`
    seconds, if the queue is at or under its resume watermark (for the task's sweep hook)."""

    worker: str
    queue: str
    task: str
    limit: int
    lease: float
    now: datetime | None = None


# -- schedules --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScheduleFireParams:
    """Enqueue `spec` + `payload` once per due tick of `schedule`.

    Ticks missed for longer than `down_after` seconds follow the schedule's misfire policy.
    """

    schedule: ScheduleDef
    spec: JobSpec
    payload: Payload
    down_after: float
    now: datetime | None = None


# -- queues -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QueueChangeParams:
    """Apply `changes` (`QueuePolicy.changed`) to queue `name`'s stored policy, or to
    `base` when it has none, in one transaction."""

    name: str
    changes: Mapping[str, Any]
    base: QueuePolicy


# -- tokens -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TokenCreateParams:
    """Store an API token by its lookup part and digest (never the token itself)."""

    name: str
    lookup: str
    digest: str
    scopes: frozenset[Scope]


@dataclass(frozen=True, slots=True)
class TokenFound:
    """The stored token of a lookup part; `stale` when its last use was recorded long
    enough ago to record this one."""

    name: str
    digest: str
    scopes: frozenset[Scope]
    stale: bool


# -- events -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EventReadParams:
    """Committed events after `after`, oldest first, at most `limit`, of the job, queue and
    channel given (None: any)."""

    after: EventCursor = EventCursor.START
    job_id: int | None = None
    queue: str | None = None
    channel: str | None = None
    limit: int = 500


@dataclass(frozen=True, slots=True)
class NotifyParams:
    """An application's event on `channel`; `data` is JSON text."""

    channel: str
    data: str


# -- stats ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StatsReadParams:
    """Minute buckets starting at or after `since` (epoch seconds), of `queue` (None: all
    queues), added up per `size` seconds from `since`."""

    since: float
    size: int = 60
    queue: str | None = None


# -- workflows --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WorkflowInsertParams:
    """A workflow's jobs and edges, stored in one transaction (all or nothing; `conn`: the
    caller's). `kind` ("chain", "group", "chord", "workflow", "map") and `name` describe it
    in listings; with `kind` None no workflow row is stored (a plain job with
    `depends_on`). Edges to stored jobs (`Edge.parent_id`) lock those parents and read how
    they ended: a parent already over is applied at once (its rule, or one parent fewer to
    wait for)."""

    kind: str | None
    nodes: Sequence[Node]
    edges: Sequence[Edge]
    name: str | None = None
    conn: Any = None


@dataclass(frozen=True, slots=True)
class WorkflowInserted:
    """The stored workflow's id (None without a workflow row) and each node's job id, in
    node order."""

    workflow_id: int | None
    ids: list[int]


@dataclass(frozen=True, slots=True)
class ParentsReadParams:
    """Read how the parents of jobs `child_ids` ended, for their start; results only with
    `results`, and only while a child's parents' results total at most `limit` bytes of
    JSON (beyond it `ParentsRead.size` tells how much, and no result is read)."""

    child_ids: Sequence[int]
    results: bool = True
    limit: int | None = None


@dataclass(frozen=True, slots=True)
class ParentsRead:
    """One child's parents in its edges' order, and their results' total size in bytes."""

    parents: list[ParentOutcome]
    size: int = 0
    too_large: bool = False


@dataclass(frozen=True, slots=True)
class ResultsPageParams:
    """A page of the results of job `child_id`'s parents in its edges' order, after edge
    position `after` (a reducer's stream; each result is JSON text)."""

    child_id: int
    after: int = -1
    limit: int = 100


@dataclass(frozen=True, slots=True)
class WorkflowNode:
    """One node of a stored workflow, for its status: its job and the job ids it waits for."""

    job_id: int
    name: str
    task: str
    state: JobState
    attempt: int
    parents: list[int]
    started_at: datetime | None
    finished_at: datetime | None


@dataclass(frozen=True, slots=True)
class WorkflowRecord:
    """A stored workflow: what it is, when it was stored, and its nodes (in id order)."""

    id: int
    kind: str
    name: str | None
    created_at: datetime
    nodes: list[WorkflowNode]


@dataclass(frozen=True, slots=True)
class WorkflowSummary:
    """A workflow in a listing: its size and how many of its nodes are in each state."""

    id: int
    kind: str
    name: str | None
    created_at: datetime
    total: int
    states: Mapping[JobState, int]


@dataclass(frozen=True, slots=True)
class WorkflowListParams:
    """Newest first, keyset-paged by workflow id."""

    before_id: int | None = None
    limit: int = 50


# -- topics -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PublishParams:
    """Messages appended to `topic` in one transaction (`conn`: the caller's), each a (key,
    value as JSON text) pair; the offsets given are returned by position."""

    topic: str
    messages: Sequence[tuple[str | None, str]]
    conn: Any = None


@dataclass(frozen=True, slots=True)
class SubscribeParams:
    """Store group `group` of `topic` unless it exists, its cursor placed by `start`
    (`offload.core.topics.Start`); an existing group keeps its cursor and takes
    `ordered_by_key` as declared."""

    topic: str
    group: str
    start: Start = "latest"
    ordered_by_key: bool = False


@dataclass(frozen=True, slots=True)
class PumpParams:
    """Hand up to `limit` messages after group `group`'s cursor to its queue as jobs of
    `spec` (whose queue is the group's), and move the cursor past them."""

    topic: str
    group: str
    spec: JobSpec
    limit: int


@dataclass(frozen=True, slots=True)
class ReplayParams:
    """Move group `group`'s cursor to `offset`, or before the first message published at
    or after `at` (exactly one of the two)."""

    topic: str
    group: str
    offset: int | None = None
    at: datetime | None = None


@dataclass(frozen=True, slots=True)
class RetentionParams:
    """Keep `topic`'s messages for `seconds` and at most `max_messages` of them (None: no
    bound of that kind)."""

    topic: str
    seconds: float | None = None
    max_messages: int | None = None


@dataclass(frozen=True, slots=True)
class MessageReadParams:
    """Up to `limit` retained messages of `topic` after offset `after`, oldest first."""

    topic: str
    after: int = 0
    limit: int = 500


__all__ = [
    "ClaimParams",
    "Claimed",
    "ElectParams",
    "EventReadParams",
    "FinishParams",
    "Heartbeat",
    "HeartbeatParams",
    "JobFilter",
    "JobIdsParams",
    "JobInsertParams",
    "JobListParams",
    "JobPruneParams",
    "JobRetryManyParams",
    "JobRetryParams",
    "Lease",
    "MessageReadParams",
    "NotifyParams",
    "Outcome",
    "ParentsRead",
    "ParentsReadParams",
    "ProgressReport",
    "PublishParams",
    "PumpParams",
    "QueueChangeParams",
    "ReleaseParams",
    "ReplayParams",
    "RescueParams",
    "ResignParams",
    "ResultsPageParams",
    "RetentionParams",
    "ScheduleFireParams",
    "StatsReadParams",
    "SubscribeParams",
    "SweepReadmitParams",
    "SweepTakeParams",
    "TokenCreateParams",
    "TokenFound",
    "WorkflowInsertParams",
    "WorkflowInserted",
    "WorkflowListParams",
    "WorkflowNode",
    "WorkflowRecord",
    "WorkflowSummary",
]
