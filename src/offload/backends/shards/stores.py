"""The storage areas of `ShardedBackend`, each routing its operations: by queue or topic, by
the shard an id names, or to every shard with the answers merged."""

from __future__ import annotations

import builtins
import heapq
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from offload.backends.base import Backend, Listener
from offload.backends.params import (
    Claimed,
    ClaimParams,
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
    Lease,
    MessageReadParams,
    NotifyParams,
    Outcome,
    ParentsRead,
    ParentsReadParams,
    ProgressReport,
    PublishParams,
    PumpParams,
    QueueChangeParams,
    ReleaseParams,
    ReplayParams,
    RescueParams,
    ResultsPageParams,
    RetentionParams,
    StatsReadParams,
    SubscribeParams,
    SweepReadmitParams,
    SweepTakeParams,
    WorkflowInserted,
    WorkflowInsertParams,
    WorkflowListParams,
    WorkflowRecord,
    WorkflowSummary,
)
from offload.backends.shards.shardmap import SHARD_BITS, Member, shard_of
from offload.core.errors import (
    CrossShard,
    JobNotFound,
    OffloadError,
    QueueMoved,
    ShardMismatch,
    UnknownDependency,
    WorkflowNotFound,
)
from offload.core.events import Event, EventCursor
from offload.core.flow import QueuePolicy, TaskLimits
from offload.core.job import Job
from offload.core.records import (
    JobChange,
    QueueFigures,
    QueueState,
    StateCensus,
    WorkerCensus,
    WorkerInfo,
)
from offload.core.stats import Tally
from offload.core.topics import Message, TopicState

T = TypeVar("T")
log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from offload.backends.shards.router import ShardedBackend


class ShardedSchema:
    """Every shard migrated and checked alike; each one's ids in its range."""

    def __init__(self, sharded: ShardedBackend) -> None:
        self.s = sharded

    @property
    def target(self) -> int:
        return self.s.home.schema.target

    def version(self) -> int:
        return min(self.s.all(lambda b: b.schema.version()))

    def migrate(self) -> int:
        reached = min(self.s.all(lambda b: b.schema.migrate()))
        for index, member in enumerate(self.s.members):
            member.store.set_floor(index << SHARD_BITS)
        return reached

    def check(self) -> None:
        for index, member in enumerate(self.s.members):
            member.backend.schema.check()
            self._check_range(index, member)

    @staticmethod
    def _check_range(index: int, member: Member) -> None:
        floor, ceiling = index << SHARD_BITS, (index + 1) << SHARD_BITS
        jobs_min, jobs_next, flows_min, flows_next = member.store.ids()
        for what, lowest, following in (
            ("job", jobs_min, jobs_next),
            ("workflow", flows_min, flows_next),
        ):
            if lowest is not None and not floor <= lowest < ceiling:
                raise ShardMismatch(
                    member.name,
                    member.backend.location,
                    f"holds {what} id {lowest}, outside its range [{floor}, {ceiling}) as "
                    f"shard {index}: keep the shards in their order, and only the first may "
                    "hold jobs from before sharding",
                )
            if not floor <= following < ceiling:
                raise ShardMismatch(
                    member.name,
                    member.backend.location,
                    f"gives {what} ids from {following}, outside its range [{floor}, "
                    f"{ceiling}) as shard {index}: run `offload migrate` through the sharded App",
                )


class ShardedJobs:
    def __init__(self, sharded: ShardedBackend) -> None:
        self.s = sharded

    def insert(self, params: JobInsertParams) -> Inserted:
        if params.conn is not None:  # the caller's transaction, on one database: no retry
            return self.s.once(params.spec.queue, lambda b: b.jobs.insert(params))
        return self.s.routed(params.spec.queue, lambda b: b.jobs.insert(params))

    def groupable(self, params: JobInsertParams) -> bool:
        return self.s.route(params.spec.queue).jobs.groupable(params)

    def insert_group(self, group: Sequence[JobInsertParams]) -> list[Inserted | OffloadError]:
        """Each shard's part of the group in one transaction of its own."""
        outcomes: list[Inserted | OffloadError | None] = [None] * len(group)
        parts: dict[int, list[int]] = {}
        for position, params in enumerate(group):
            parts.setdefault(self.s.routes.get(params.spec.queue, 0), []).append(position)
        for index, positions in parts.items():
            backend = self.s.members[index].backend
            done: list[Inserted | OffloadError]
            try:
                done = backend.jobs.insert_group([group[p] for p in positions])
            except QueueMoved:  # a queue of the part moved: each goes on its own, routed
                done = [self._alone(group[p]) for p in positions]
            except OffloadError as exc:  # this shard stored nothing; the others' parts stand
                done = [exc] * len(positions)
            for position, outcome in zip(positions, done, strict=True):
                if isinstance(outcome, QueueMoved):
                    self.s.follow(outcome)
                outcomes[position] = (
                    self._alone(group[position]) if isinstance(outcome, QueueMoved) else outcome
                )
        return [outcome for outcome in outcomes if outcome is not None]

    def _alone(self, params: JobInsertParams) -> Inserted | OffloadError:
        try:
            return self.insert(params)
        except OffloadError as exc:
            return exc

    def get(self, job_id: int) -> Job:
        return self.s.by_id(job_id).jobs.get(job_id)

    def retry_many(self, params: JobRetryManyParams) -> list[JobChange]:
        return _concat(self.s.all(lambda b: b.jobs.retry_many(params)))

    def cancel_many(self, where: JobFilter) -> list[JobChange]:
        return _concat(self.s.all(lambda b: b.jobs.cancel_many(where)))

    def purge(self, where: JobFilter) -> int:
        return sum(self.s.all(lambda b: b.jobs.purge(where)))

    def list(self, params: JobListParams) -> builtins.list[Job]:
        """Merged by id, highest first: shard by shard, newest first within each (a page
        boundary `before_id` holds across shards)."""
        pages = self.s.all(lambda b: b.jobs.list(params))
        return list(heapq.merge(*pages, key=lambda job: -job.id))[: params.limit]

    def ids(self, params: JobIdsParams) -> builtins.list[int]:
        pages = self.s.all(lambda b: b.jobs.ids(params))
        return list(heapq.merge(*pages, key=lambda job_id: -job_id))[: params.limit]

    def count(self, where: JobFilter) -> int:
        return sum(self.s.all(lambda b: b.jobs.count(where)))

    def counts(self) -> dict[str, dict[str, int]]:
        total: dict[str, dict[str, int]] = {}
        for counts in self.s.all(lambda b: b.jobs.counts()):
            for queue, states in counts.items():
                mine = total.setdefault(queue, {})
                for state, number in states.items():
                    mine[state] = mine.get(state, 0) + number
        return total

    def census(self) -> builtins.list[StateCensus]:
        merged: dict[tuple[str, Any], StateCensus] = {}
        for rows in self.s.all(lambda b: b.jobs.census()):
            for row in rows:
                key = (row.queue, row.state)
                seen = merged.get(key)
                if seen is None:
                    merged[key] = row
                    continue
                dues = [d for d in (seen.oldest_due, row.oldest_due) if d is not None]
                merged[key] = replace(
                    seen, jobs=seen.jobs + row.jobs, oldest_due=max(dues) if dues else None
                )
        return list(merged.values())

    def cancel(self, job_id: int) -> Job:
        return self.s.by_id(job_id).jobs.cancel(job_id)

    def retry(self, params: JobRetryParams) -> Job:
        return self.s.by_id(params.job_id).jobs.retry(params)

    def prune(self, params: JobPruneParams) -> int:
        return sum(self.s.each(lambda b: b.jobs.prune(params)))


class ShardedClaims:
    """Claims from every shard; a job's bookkeeping on the shard its id names."""

    def __init__(self, sharded: ShardedBackend) -> None:
        self.s = sharded
        #: Worker -> (id, attempt) of outcomes its last failed `finish` recorded already.
        self._recorded: dict[str, set[tuple[int, int]]] = {}

    def claim(self, params: ClaimParams) -> list[Job]:
        return self.take(params).jobs

    def take(self, params: ClaimParams) -> Claimed:
        """Shard by shard until the batch is full. Each shard's claim commits on its own, so
        if a later shard fails, the leases taken already are given back (attempt restored)
        before the error is raised: no job is left leased to a claim nobody received."""
        jobs: list[Job] = []
        wait: float | None = None
        try:
            for backend in self.s.claiming(params.queue):
                took = backend.claims.take(replace(params, limit=params.limit - len(jobs)))
                jobs += took.jobs
                wait = _sooner(wait, took.wait)
                if len(jobs) >= params.limit:
                    break
        except BaseException:
            _give_back(params.worker, jobs, self.release)
            raise
        return Claimed(jobs, wait)

    def take_group(self, params: GroupClaimParams) -> Claimed:
        wait: float | None = None
        for backend in self.s.claiming(params.queue):
            took = backend.claims.take_group(params)
            if took.jobs:
                return took
            wait = _sooner(wait, took.wait)
        return Claimed([], wait)

    def heartbeat(self, params: HeartbeatParams) -> Heartbeat:
        parts = self.s.split(params.leases, _lease_id)
        lost = [lease.id for lease in parts.pop(-1, [])]  # no shard gave out such an id
        if not parts:  # no leases: the home shard still hears the worker
            parts = {0: []}
        cancel: list[int] = []
        for index, leases in parts.items():
            beat = self.s.members[index].backend.claims.heartbeat(replace(params, leases=leases))
            lost += beat.lost
            cancel += beat.cancel
        return Heartbeat(lost, cancel)

    def progress(self, worker: str, reports: Sequence[ProgressReport]) -> None:
        for index, part in self.s.split(reports, _report_id).items():
            if index >= 0:
                self.s.members[index].backend.claims.progress(worker, part)

    def finish(self, params: FinishParams) -> list[int]:
        """Each shard's outcomes in a transaction of its own. If a later shard fails, the
        outcomes the earlier shards recorded are remembered (the worker's last failed call
        only), so the writer's retry of the same batch skips them instead of hearing their
        leases as lost."""
        recorded = self._recorded.pop(params.worker, set())
        outcomes = [o for o in params.outcomes if (o.id, o.attempt) not in recorded]
        lost: list[int] = []
        done: set[tuple[int, int]] = set()
        try:
            for index, part in self.s.split(outcomes, _report_id).items():
                if index < 0:
                    lost += [outcome.id for outcome in part]
                    continue
                backend = self.s.members[index].backend
                lost += backend.claims.finish(replace(params, outcomes=part))
                done |= {(outcome.id, outcome.attempt) for outcome in part}
        except BaseException:
            if done or recorded:
                self._recorded[params.worker] = done | recorded
            raise
        return lost

    def release(self, params: ReleaseParams) -> int:
        return sum(
            self.s.members[index].backend.claims.release(replace(params, leases=part))
            for index, part in self.s.split(params.leases, _lease_id).items()
            if index >= 0
        )

    def rescue(self, params: RescueParams) -> list[int]:
        return _concat(self.s.each(lambda b: b.claims.rescue(params)))


class ShardedWorkers:
    """Registered on every shard (each shard's drain rates and census see every worker);
    read from home."""

    def __init__(self, sharded: ShardedBackend) -> None:
        self.s = sharded

    def register(self, info: WorkerInfo) -> None:
        self.s.all(lambda b: b.workers.register(info))

    def heartbeat(self, worker: str, rates: Mapping[str, float] | None = None) -> None:
        """On every shard; and the fences are read, so a worker's claims follow a move
        within a heartbeat (one small read per shard)."""
        self.s.all(lambda b: b.workers.heartbeat(worker, rates))
        self.s.learn()

    def unregister(self, worker: str) -> None:
        self.s.all(lambda b: b.workers.unregister(worker))

    def prune(self, older_than: float) -> int:
        return max(self.s.each(lambda b: b.workers.prune(older_than)))

    def list(self) -> list[WorkerInfo]:
        return self.s.home.workers.list()

    def census(self, lost_after: float) -> WorkerCensus:
        return self.s.home.workers.census(lost_after)


class ShardedQueues:
    """Policies and limits written to every shard (each enforces them for its own jobs);
    read from home; figures merged."""

    def __init__(self, sharded: ShardedBackend) -> None:
        self.s = sharded

    def declare(
        self, policies: Mapping[str, QueuePolicy], limits: Mapping[str, TaskLimits | None]
    ) -> None:
        self.s.all(lambda b: b.queues.declare(policies, limits))

    def set(self, name: str, policy: QueuePolicy) -> None:
        self.s.all(lambda b: b.queues.set(name, policy))

    def change(self, params: QueueChangeParams) -> QueuePolicy:
        return self.s.all(lambda b: b.queues.change(params))[0]

    def pause(self, name: str, paused: bool) -> None:
        self.s.all(lambda b: b.queues.pause(name, paused))

    def get(self, name: str) -> QueueState | None:
        return self.s.home.queues.get(name)

    def list(self) -> list[QueueState]:
        return self.s.home.queues.list()

    def task_limits(self) -> dict[str, TaskLimits]:
        return self.s.home.queues.task_limits()

    def stats(self, lost_after: float) -> builtins.list[QueueFigures]:
        merged: dict[str, QueueFigures] = {}
        for rows in self.s.all(lambda b: b.queues.stats(lost_after)):
            for row in rows:
                seen = merged.get(row.name)
                if seen is None:
                    merged[row.name] = row
                    continue
                waits = [w for w in (seen.oldest_available, row.oldest_available) if w is not None]
                merged[row.name] = replace(
                    seen,
                    oldest_available=max(waits) if waits else None,
                    held=seen.held + row.held,
                    # Every worker is registered on every shard: the rates are the same.
                    drain_rate=max(seen.drain_rate, row.drain_rate),
                    limited_tasks=sorted({*seen.limited_tasks, *row.limited_tasks}),
                )
        return list(merged.values())


class ShardedSweep:
    def __init__(self, sharded: ShardedBackend) -> None:
        self.s = sharded

    def shed(self, queue: str) -> list[int]:
        return _concat(self.s.each(lambda b: b.sweep.shed(queue)))

    def readmit(self, params: SweepReadmitParams) -> list[JobChange]:
        return _concat(self.s.each(lambda b: b.sweep.readmit(params)))

    def take(self, params: SweepTakeParams) -> list[Job]:
        """Shard by shard, as `ShardedClaims.take`: a later shard's failure gives back the
        shed jobs taken already before it is raised."""
        jobs: list[Job] = []
        try:
            for backend in self.s.claiming(params.queue):
                jobs += backend.sweep.take(replace(params, limit=params.limit - len(jobs)))
                if len(jobs) >= params.limit:
                    break
        except BaseException:
            _give_back(params.worker, jobs, self.untake)
            raise
        return jobs

    def untake(self, params: ReleaseParams) -> int:
        return sum(
            self.s.members[index].backend.sweep.untake(replace(params, leases=part))
            for index, part in self.s.split(params.leases, _lease_id).items()
            if index >= 0
        )


class ShardedEvents:
    """A job's or a queue's events from its shard; the feed of everything from home."""

    def __init__(self, sharded: ShardedBackend) -> None:
        self.s = sharded

    def _of(self, params: EventReadParams) -> Backend:
        if params.job_id is not None:
            return self.s.by_id(params.job_id)
        if params.queue is not None:
            return self.s.route(params.queue)
        return self.s.home

    def read(self, params: EventReadParams) -> builtins.list[Event]:
        return self._of(params).events.read(params)

    def tail(self) -> EventCursor:
        return self.s.home.events.tail()

    def notify(self, params: NotifyParams) -> EventCursor:
        return self.s.home.events.notify(params)

    def prune(self, older_than: float) -> int:
        return sum(self.s.each(lambda b: b.events.prune(older_than)))

    def signal(self) -> Listener:
        return self.s.home.events.signal()


class ShardedStats:
    def __init__(self, sharded: ShardedBackend) -> None:
        self.s = sharded

    def roll(self, limit: int = 10_000) -> int:
        return sum(self.s.each(lambda b: b.stats.roll(limit)))

    def read(self, params: StatsReadParams) -> builtins.list[tuple[float, Tally]]:
        """Every shard's buckets added up, slot by slot."""
        slots: dict[float, Tally] = {}
        for rows in self.s.all(lambda b: b.stats.read(params)):
            for start, tally in rows:
                mine = slots.get(start)
                if mine is None:
                    slots[start] = mine = Tally()
                mine.add(tally)
        return sorted(slots.items(), key=lambda slot: slot[0])

    def prune(self, older_than: float) -> int:
        return sum(self.s.each(lambda b: b.stats.prune(older_than)))


class ShardedWorkflows:
    """A workflow lives on one shard: every node's queue, and every job it waits for."""

    def __init__(self, sharded: ShardedBackend) -> None:
        self.s = sharded

    def insert(self, params: WorkflowInsertParams) -> WorkflowInserted:
        """On the one shard of every node's queue and every stored parent; checked again
        after following a move, so a stale map's workflow is refused as `CrossShard`, not
        stored beside parents on another shard."""
        if not params.nodes:
            return self.s.home.workflows.insert(params)
        queue = self._one_shard(params)
        if params.conn is not None:
            return self.s.once(queue, lambda b: b.workflows.insert(params))
        for _ in range(len(self.s.members)):
            try:
                return self.s.route(queue).workflows.insert(params)
            except QueueMoved as moved:
                self.s.follow(moved)
                queue = self._one_shard(params)
        return self.s.route(queue).workflows.insert(params)  # a cycle: let it be refused

    def _one_shard(self, params: WorkflowInsertParams) -> str:
        """A queue of the workflow, if all its queues and stored parents are on one shard
        by the current routes; raises CrossShard (or UnknownDependency) naming them."""
        queues = {node.spec.queue for node in params.nodes}
        shards = {queue: self.s.names[self.s.routes.get(queue, 0)] for queue in queues}
        if len(set(shards.values())) > 1:
            raise CrossShard("a workflow", shards)
        queue = next(iter(queues))
        index = self.s.routes.get(queue, 0)
        for edge in params.edges:
            if edge.parent_id is None or shard_of(edge.parent_id) == index:
                continue
            if not 0 <= shard_of(edge.parent_id) < len(self.s.names):
                raise UnknownDependency(edge.parent_id)  # no shard gives out such an id
            parent = {f"job {edge.parent_id}": self.s.names[shard_of(edge.parent_id)]}
            raise CrossShard("a workflow", {**shards, **parent})
        return queue

    def parents(self, params: ParentsReadParams) -> dict[int, ParentsRead]:
        read: dict[int, ParentsRead] = {}
        for index, ids in self.s.split(params.child_ids, int).items():
            if index >= 0:
                backend = self.s.members[index].backend
                read |= backend.workflows.parents(replace(params, child_ids=ids))
        return read

    def results(self, params: ResultsPageParams) -> builtins.list[tuple[int, str | None]]:
        return self.s.by_id(params.child_id).workflows.results(params)

    def _by_id(self, workflow_id: int) -> Backend:
        try:
            return self.s.by_id(workflow_id)
        except JobNotFound:
            raise WorkflowNotFound(workflow_id) from None

    def get(self, workflow_id: int) -> WorkflowRecord:
        return self._by_id(workflow_id).workflows.get(workflow_id)

    def list(self, params: WorkflowListParams) -> builtins.list[WorkflowSummary]:
        pages = self.s.all(lambda b: b.workflows.list(params))
        return list(heapq.merge(*pages, key=lambda flow: -flow.id))[: params.limit]

    def cancel(self, workflow_id: int) -> builtins.list[JobChange]:
        return self._by_id(workflow_id).workflows.cancel(workflow_id)


class ShardedTopics:
    """A topic, its log and its groups live on the topic's shard."""

    def __init__(self, sharded: ShardedBackend) -> None:
        self.s = sharded

    def publish(self, params: PublishParams) -> builtins.list[int]:
        return self.s.route(params.topic).topics.publish(params)

    def read(self, params: MessageReadParams) -> builtins.list[Message]:
        return self.s.route(params.topic).topics.read(params)

    def subscribe(self, params: SubscribeParams) -> None:
        self.s.route(params.topic).topics.subscribe(params)

    def pump(self, params: PumpParams) -> int:
        return self.s.route(params.topic).topics.pump(params)

    def replay(self, params: ReplayParams) -> int:
        return self.s.route(params.topic).topics.replay(params)

    def list(self) -> builtins.list[TopicState]:
        return _concat(self.s.all(lambda b: b.topics.list()))

    def retain(self, params: RetentionParams) -> None:
        self.s.route(params.topic).topics.retain(params)

    def prune(self, now: datetime | None = None) -> int:
        return sum(self.s.each(lambda b: b.topics.prune(now)))


def _give_back(worker: str, jobs: Sequence[Job], release: Callable[[ReleaseParams], int]) -> None:
    """Release the leases of `jobs` a failed multi-shard claim took already (their shards
    answered a moment ago); if that fails too, the leases run out and the rescue puts them
    back, and the claim's own error is the one raised."""
    if not jobs:
        return
    try:
        release(ReleaseParams(worker, [Lease(job.id, job.attempt) for job in jobs]))
    except OffloadError:
        log.warning(
            "a claim over shards failed; giving back %d jobs it took also failed: they wait "
            "for their leases to run out",
            len(jobs),
            exc_info=True,
        )


def _concat(parts: Iterable[Sequence[T]]) -> list[T]:
    return [item for part in parts for item in part]


def _sooner(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else min(a, b)


def _lease_id(lease: Lease) -> int:
    return lease.id


def _report_id(report: ProgressReport | Outcome) -> int:
    return report.id
