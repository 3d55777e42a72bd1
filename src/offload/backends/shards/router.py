"""`ShardedBackend`: the `Backend` over several shards (see the package docstring), and
`open_shards`, which builds one from URLs and a map."""

from __future__ import annotations

import itertools
import logging
import reprlib
import selectors
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import TypeVar

from offload.backends.base import Backend, Listener
from offload.backends.shards.shardmap import FAIR_EVERY, MAX_SHARDS, Member, placement, shard_of
from offload.backends.shards.stores import (
    ShardedClaims,
    ShardedEvents,
    ShardedJobs,
    ShardedQueues,
    ShardedSchema,
    ShardedStats,
    ShardedSweep,
    ShardedTopics,
    ShardedWorkers,
    ShardedWorkflows,
)
from offload.core.errors import (
    ConfigurationError,
    JobNotFound,
    QueueMoved,
    UnknownShard,
)
from offload.core.options import check_name

T = TypeVar("T")

log = logging.getLogger(__name__)


class ShardedBackend:
    """A `Backend` over shards, the first being home (see the package docstring)."""

    name = "postgresql"
    parallel_writes = True

    def __init__(self, members: Sequence[Member], routes: Mapping[str, str]) -> None:
        if not members:
            raise ConfigurationError("shards must name at least one database")
        if len(members) > MAX_SHARDS:
            raise ConfigurationError(f"at most {MAX_SHARDS} shards, got {len(members)}")
        self.members = list(members)
        self.names = [m.name for m in members]
        self._index = {name: i for i, name in enumerate(self.names)}
        #: Queue -> shard position: the map given, then the moves learned (`follow`).
        self.routes = {queue: self.position(shard, queue) for queue, shard in routes.items()}
        self.home = self.members[0].backend
        #: Claim turns per queue (`claiming`): one counter for all would let a worker's
        #: rotation over its queues land every fair turn on the same queue.
        self._turns: defaultdict[str, Iterator[int]] = defaultdict(itertools.count)
        self.schema = ShardedSchema(self)
        self.jobs = ShardedJobs(self)
        self.claims = ShardedClaims(self)
        self.schedules = self.home.schedules
        self.workers = ShardedWorkers(self)
        self.queues = ShardedQueues(self)
        self.sweep = ShardedSweep(self)
        self.tokens = self.home.tokens
        #: One holder per duty for every shard: its maintenance (rescue, pruning) reaches
        #: them all, so the leases live at home with the tokens and the schedules.
        self.leaders = self.home.leaders
        self.events = ShardedEvents(self)
        self.stats = ShardedStats(self)
        self.workflows = ShardedWorkflows(self)
        self.topics = ShardedTopics(self)
        self.location = ", ".join(f"{m.name}={m.backend.location}" for m in members)

    # -- routing --------------------------------------------------------------------

    def position(self, shard: str, queue: str | None = None) -> int:
        """A shard's position by name; raises UnknownShard."""
        try:
            return self._index[shard]
        except KeyError:
            raise UnknownShard(shard, self.names, queue) from None

    def route(self, queue: str) -> Backend:
        """The backend a queue's (or topic's) new data goes to."""
        return self.members[self.routes.get(queue, 0)].backend

    def by_id(self, job_id: int) -> Backend:
        """The backend holding a job (or workflow) id; JobNotFound past the last shard."""
        index = shard_of(job_id)
        if not 0 <= index < len(self.members):
            raise JobNotFound(job_id)
        return self.members[index].backend

    def follow(self, moved: QueueMoved) -> None:
        """Route a queue where a shard's fence says it went."""
        self.routes[moved.queue] = self.position(moved.shard, moved.queue)

    def learn(self) -> None:
        """Follow every fence the shards hold (moves this map has not seen, chains too), so
        claims start where each queue now lives. A fence naming a shard this App was not
        given is left to the insert that meets it (`QueueMoved`, then UnknownShard)."""
        fences = [member.store.fences() for member in self.members]
        for _ in range(len(self.members)):
            moved = {
                queue: self._index[shard]
                for index, fenced in enumerate(fences)
                for queue, shard in fenced.items()
                if self.routes.get(queue, 0) == index and shard in self._index
            }
            if not moved:
                return
            self.routes.update(moved)

    def routed(self, queue: str, call: Callable[[Backend], T]) -> T:
        """`call` on the queue's shard, following fences of moves this map has not seen."""
        for _ in range(len(self.members)):
            try:
                return call(self.route(queue))
            except QueueMoved as moved:
                self.follow(moved)
        return call(self.route(queue))  # a cycle of fences: let its refusal be seen

    def once(self, queue: str, call: Callable[[Backend], T]) -> T:
        """`call` on the queue's shard in the caller's own transaction (`conn`), which a
        refusal has aborted: the move is learned for the next call, and raised."""
        try:
            return call(self.route(queue))
        except QueueMoved as moved:
            self.follow(moved)
            raise

    def claiming(self, queue: str) -> list[Backend]:
        """Every shard's backend in the order to claim `queue` from: its shard first (where
        its new jobs are), the others after, so a batch filled there costs no probe of a
        shard without its jobs; but every `FAIR_EVERY`-th call for the queue starts at each
        shard in turn, so jobs left on an old shard wait a bounded number of claims, never on a
        backlog of the new one."""
        count = len(self.members)
        turn = next(self._turns[queue])
        start = turn // FAIR_EVERY % count if turn % FAIR_EVERY == 0 else self.routes.get(queue, 0)
        return [self.members[(start + k) % count].backend for k in range(count)]

    def all(self, call: Callable[[Backend], T]) -> list[T]:
        """`call` on every shard, home first."""
        return [call(m.backend) for m in self.members]

    def each(self, call: Callable[[Backend], T]) -> list[T]:
        """`call` on every shard, home first, each on its own: one that fails (unreachable)
        does not keep the later ones from it. After all were tried, the first error is
        raised, what the others returned logged; for maintenance (rescue, sweep, prune,
        roll-up), where each shard's part stands alone and is committed by itself."""
        done: list[T] = []
        failed: list[tuple[str, Exception]] = []
        for member in self.members:
            try:
                done.append(call(member.backend))
            except Exception as exc:
                failed.append((member.name, exc))
        if failed:
            log.warning(
                "maintenance failed on shard(s) %s (first: %s); done on the %d others: %s",
                ", ".join(name for name, _ in failed),
                failed[0][1],
                len(done),
                reprlib.repr(done),
            )
            raise failed[0][1]
        return done

    def split(self, items: Iterable[T], key: Callable[[T], int]) -> dict[int, list[T]]:
        """Items grouped by the shard of their id (positions past the last shard are kept
        apart under -1: the caller decides what an unknown id means)."""
        groups: dict[int, list[T]] = {}
        for item in items:
            index = shard_of(key(item))
            groups.setdefault(index if 0 <= index < len(self.members) else -1, []).append(item)
        return groups

    # -- moves ----------------------------------------------------------------------

    def locate(self, queue: str) -> int:
        """Where a queue is now: its mapped shard, then each fence onward."""
        index = self.routes.get(queue, 0)
        for _ in range(len(self.members)):
            moved_to = self.members[index].store.fences().get(queue)
            if moved_to is None:
                break
            index = self.position(moved_to, queue)
        return index

    def move(self, queue: str, shard: str) -> None:
        """Send the queue's new jobs to `shard` from now on; its jobs on the old shard stay
        there and are run there (every worker claims from every shard). Serialized with
        every other move by a lock on the home shard (holding one of its connections)."""
        target = self.position(shard, queue)
        with self.members[0].store.moving():  # one move at a time, from where the last left
            source = self.locate(queue)
            if source != target:
                self.members[target].store.unfence(queue)  # it may be coming back
                self.members[source].store.fence(queue, shard)
        self.routes[queue] = target

    def unfinished(self, queue: str) -> dict[str, int]:
        """Jobs of `queue` not yet final, per shard."""
        return {m.name: m.store.unfinished(queue) for m in self.members}

    # -- the rest of Backend ----------------------------------------------------------

    def now(self) -> datetime:
        return self.home.now()

    def listener(self) -> Listener:
        return _Listeners([m.backend.listener for m in self.members])

    def limit_connections(self, limit: int) -> None:
        for member in self.members:
            member.backend.limit_connections(limit)

    def close(self) -> None:
        for member in self.members:
            member.backend.close()


class _Listeners:
    """Several shards' wake-up channels as one descriptor: a selector's, readable when any
    of theirs is (epoll on Linux, kqueue on BSD and macOS)."""

    address = None

    def __init__(self, opens: Sequence[Callable[[], Listener]]) -> None:
        self._selector = selectors.DefaultSelector()
        self._listeners: list[Listener] = []
        try:
            for open_one in opens:
                listener = open_one()
                self._listeners.append(listener)
                self._selector.register(listener.fileno(), selectors.EVENT_READ)
            if self._selector.fileno() < 0:
                raise ConfigurationError("shards need a selector with a descriptor (epoll)")
        except BaseException:
            self.close()
            raise

    def fileno(self) -> int:
        return self._selector.fileno()

    def drain(self) -> None:
        for listener in self._listeners:
            listener.drain()

    def close(self) -> None:
        for listener in self._listeners:
            listener.close()
        self._selector.close()


def open_shards(shards: Mapping[str, str], shard_map: Mapping[str, Iterable[str]]) -> Backend:
    """A `ShardedBackend` over the PostgreSQL URLs given by shard name (the first is home),
    queues placed by `shard_map` (shard name -> queues and topics; others go home). Checks
    the map first, naming what is wrong; connects on first use."""
    from offload.backends import open_backend, redact

    if not isinstance(shards, Mapping) or not shards:
        raise ConfigurationError("shards must map at least one shard name to a database URL")
    names = [check_name("shard", name) for name in shards]
    routes = placement(names, shard_map)
    members = []
    for name, url in shards.items():
        backend = open_backend(url)
        store = getattr(backend, "shards", None)
        if store is None:
            backend.close()
            raise ConfigurationError(
                f"shard {name!r} ({redact(url)}): shards are PostgreSQL databases, "
                f"not {backend.name}"
            )
        members.append(Member(name, backend, store))
    return ShardedBackend(members, routes)
