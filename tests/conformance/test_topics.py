"""Topics (DESIGN §6): a log stored once per topic with dense offsets in commit order,
groups as cursors, the pump that hands a group's next messages to its queue as jobs,
ordered groups, replay, and listings."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import Counter
from datetime import timedelta
from typing import Any

import orjson
import psycopg
import pytest

import offload
from offload.backends.base import Backend
from offload.backends.params import (
    ClaimParams,
    FinishParams,
    MessageReadParams,
    Outcome,
    PublishParams,
    PumpParams,
    ReplayParams,
    RescueParams,
    RetentionParams,
    SubscribeParams,
)
from offload.core.errors import GroupNotFound, OffsetOutOfRange
from offload.core.flow import QueuePolicy
from offload.core.job import Job, JobSpec
from offload.core.states import JobState
from offload.core.topics import Start, group_queue
from tests.conformance.helpers import (
    SHORT_LEASE,
    RawDB,
    claim_one,
    error_json,
    expire_lease,
    insert,
    is_sqlite,
    sqlite_path,
    wait_db_time_past,
)


def publish(backend: Backend, topic: str, *values: Any, key: str | None = None) -> list[int]:
    messages = [(key, orjson.dumps(value).decode()) for value in values]
    return backend.topics.publish(PublishParams(topic, messages))


def subscribe(
    backend: Backend, topic: str, group: str, start: Start = "latest", ordered: bool = False
) -> None:
    backend.topics.subscribe(SubscribeParams(topic, group, start, ordered))


def spec(topic: str, group: str) -> JobSpec:
    return JobSpec(task="handle", queue=group_queue(topic, group))


def pump(backend: Backend, topic: str, group: str, limit: int = 100) -> int:
    return backend.topics.pump(PumpParams(topic, group, spec(topic, group), limit))


def take(backend: Backend, topic: str, group: str, limit: int = 100) -> list[Job]:
    """Claim the group's deliveries (as a member would)."""
    queue = group_queue(topic, group)
    return backend.claims.claim(ClaimParams("w1", queue, limit, 30.0))


def offsets(jobs: list[Job]) -> list[int]:
    return [int(job.args[0]["offset"]) for job in jobs]


def carried(job: Job) -> Any:
    """The message value a delivery job carries."""
    return orjson.loads(job.args[0]["value_json"])


def finish(backend: Backend, jobs: list[Job], state: JobState = JobState.SUCCEEDED) -> None:
    outcomes = [Outcome(job.id, job.attempt, state) for job in jobs]
    backend.claims.finish(FinishParams("w1", outcomes))


def group_of(backend: Backend, topic: str, group: str) -> Any:
    listed = backend.topics.list()
    (state,) = [g for t in listed for g in t.groups if (t.name, g.name) == (topic, group)]
    return state


def test_offsets_are_dense_and_messages_read_in_order(backend: Backend) -> None:
    assert publish(backend, "t", {"a": 1}, "two", key="k") == [1, 2]
    assert publish(backend, "t", 3) == [3]
    assert publish(backend, "other", None) == [1]
    read = backend.topics.read(MessageReadParams("t"))
    expected = [(1, "k", {"a": 1}), (2, "k", "two"), (3, None, 3)]
    assert [(m.offset, m.key, m.value) for m in read] == expected
    assert read[0].published_at <= backend.now()
    assert [m.offset for m in backend.topics.read(MessageReadParams("t", after=1, limit=1))] == [2]


@pytest.mark.parametrize("ordered", [False, True])
def test_values_round_trip_through_the_log_and_a_delivery(backend: Backend, ordered: bool) -> None:
    subscribe(backend, "t", "g", ordered=ordered)
    values = ["a\x00b", {"nested": ["é", "\U0001f600", None, 1.5, 2**62]}, "\\u0000"]
    for i, value in enumerate(values):
        publish(backend, "t", value, key=f"k{i}")
    assert [m.value for m in backend.topics.read(MessageReadParams("t"))] == values
    assert pump(backend, "t", "g", limit=1) == 1
    assert pump(backend, "t", "g") == 2  # an ordered pump reads the keys of these deliveries
    assert [carried(job) for job in take(backend, "t", "g")] == values


def test_every_group_gets_every_message_from_one_stored_copy(backend: Backend, db_url: str) -> None:
    for group in ("a", "b", "c"):
        subscribe(backend, "t", group)
    publish(backend, "t", *range(10))
    for group in ("a", "b", "c"):
        assert pump(backend, "t", group, limit=4) == 4
        assert pump(backend, "t", group) == 6
        assert pump(backend, "t", group) == 0
        jobs = take(backend, "t", group)
        assert sorted(offsets(jobs)) == list(range(1, 11))
        assert sorted(carried(job) for job in jobs) == list(range(10))
        assert {job.task for job in jobs} == {"handle"}
    assert RawDB(db_url).query("SELECT count(*) AS n FROM offload_messages")[0]["n"] == 10


def test_a_group_starts_where_told(backend: Backend) -> None:
    publish(backend, "t", 1, 2, 3)
    subscribe(backend, "t", "latest")
    subscribe(backend, "t", "earliest", "earliest")
    subscribe(backend, "t", "after-one", 1)
    publish(backend, "t", 4)
    cursors = {g.name: g.cursor for t in backend.topics.list() for g in t.groups}
    assert cursors == {"latest": 3, "earliest": 0, "after-one": 1}
    # A group stored keeps its cursor whatever a later declaration says.
    subscribe(backend, "t", "latest", "earliest")
    assert group_of(backend, "t", "latest").cursor == 3
    with pytest.raises(OffsetOutOfRange):
        subscribe(backend, "t", "too-far", 5)
    assert "too-far" not in {g.name for t in backend.topics.list() for g in t.groups}


def test_members_pumping_at_once_hand_out_each_message_once(backend: Backend) -> None:
    subscribe(backend, "t", "g")
    publish(backend, "t", *range(300))
    errors: list[BaseException] = []

    def member() -> None:
        try:
            while pump(backend, "t", "g", limit=7):
                pass
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=member) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert sorted(offsets(take(backend, "t", "g", 1000))) == list(range(1, 301))


def test_ordered_group_holds_a_key_until_its_delivery_is_over(backend: Backend) -> None:
    subscribe(backend, "t", "g", ordered=True)
    publish(backend, "t", 1, key="a")
    publish(backend, "t", 2, key="b")
    publish(backend, "t", 3, key="a")
    publish(backend, "t", 4, key="c")
    # Stops before offset 3 (key a is taken by offset 1 in this very pump).
    assert pump(backend, "t", "g") == 2
    first = take(backend, "t", "g")
    assert offsets(first) == [1, 2]
    assert pump(backend, "t", "g") == 0  # key a still running
    finish(backend, [first[0]], JobState.RETRYING)  # a retrying earlier message still holds it
    assert pump(backend, "t", "g") == 0
    (again,) = [j for j in take(backend, "t", "g") if offsets([j]) == [1]]
    finish(backend, [again])
    assert pump(backend, "t", "g") == 2
    assert offsets(take(backend, "t", "g")) == [3, 4]


def test_a_dead_delivery_does_not_block_its_key(backend: Backend) -> None:
    subscribe(backend, "t", "g", ordered=True)
    publish(backend, "t", 1, 2, key="a")
    assert pump(backend, "t", "g") == 1
    finish(backend, take(backend, "t", "g"), JobState.DEAD)
    assert pump(backend, "t", "g") == 1
    state = group_of(backend, "t", "g")
    assert (state.dead, state.lag, state.cursor) == (1, 1, 2)


def test_replay_delivers_exactly_the_messages_after_the_offset(backend: Backend) -> None:
    subscribe(backend, "t", "g")
    publish(backend, "t", *range(10))
    pump(backend, "t", "g")
    finish(backend, take(backend, "t", "g"))
    assert backend.topics.replay(ReplayParams("t", "g", offset=6)) == 6
    assert pump(backend, "t", "g") == 4
    assert sorted(offsets(take(backend, "t", "g"))) == [7, 8, 9, 10]


def test_replay_to_a_time(backend: Backend) -> None:
    subscribe(backend, "t", "g")
    publish(backend, "t", 1, 2)
    time.sleep(0.05)
    middle = backend.now()
    time.sleep(0.05)
    publish(backend, "t", 3)
    pump(backend, "t", "g")
    assert backend.topics.replay(ReplayParams("t", "g", at=middle)) == 2
    assert backend.topics.replay(ReplayParams("t", "g", at=middle + timedelta(hours=1))) == 3


def test_bad_replays_move_nothing(backend: Backend) -> None:
    subscribe(backend, "t", "group")
    publish(backend, "t", 1, 2)
    pump(backend, "t", "group")
    with pytest.raises(GroupNotFound, match="did you mean 'group'"):
        backend.topics.replay(ReplayParams("t", "grop", offset=0))
    with pytest.raises(OffsetOutOfRange) as info:
        backend.topics.replay(ReplayParams("t", "group", offset=3))
    assert (info.value.offset, info.value.last) == (3, 2)
    assert group_of(backend, "t", "group").cursor == 2
    with pytest.raises(GroupNotFound):
        pump(backend, "t", "nobody")


def test_listing_shows_size_groups_lag_and_dead(backend: Backend) -> None:
    subscribe(backend, "t", "g")
    subscribe(backend, "empty", "h")
    publish(backend, "t", *range(5))
    pump(backend, "t", "g", limit=3)
    jobs = take(backend, "t", "g")
    finish(backend, jobs[:1])
    finish(backend, jobs[1:2], JobState.DEAD)
    listed = {t.name: t for t in backend.topics.list()}
    assert (listed["t"].messages, listed["t"].first, listed["t"].last) == (5, 1, 5)
    (g,) = listed["t"].groups
    # 2 not yet handed out, 1 handed out and running; the dead one is not lag.
    assert (g.cursor, g.lag, g.dead, g.skipped) == (3, 3, 1, 0)
    empty = listed["empty"]
    assert (empty.messages, empty.last, empty.groups[0].lag) == (0, 0, 0)


def test_open_publishing_transactions_never_make_a_reader_skip(
    backend: Backend, db_url: str
) -> None:
    """Publishers holding their transactions open (some rolled back) while two members
    pump and a reader follows the log all along, each thread on a connection of its own
    (on SQLite too: a backend per thread, so the database's locks order them, not one
    shared connection): every committed message is handed out exactly once, none rolled
    back, and the reader sees the log in offset order without passing any offset."""
    subscribe(backend, "t", "g")
    committed: list[int] = []
    lock = threading.Lock()
    stop = threading.Event()
    errors: list[BaseException] = []
    apps: list[offload.App] = []

    def own_backend() -> Backend:
        app = offload.App(db_url)
        with lock:
            apps.append(app)
        return app.backend

    def open_publisher(n: int) -> None:
        try:
            mine = own_backend()
            for i in range(6):
                conn: Any
                if is_sqlite(db_url):  # a deferred BEGIN: the write lock from the first write
                    conn = sqlite3.connect(sqlite_path(db_url), timeout=30)
                    conn.execute("BEGIN")
                else:
                    conn = psycopg.connect(db_url)
                messages = [(None, orjson.dumps([n, i, j]).decode()) for j in range(3)]
                got = mine.topics.publish(PublishParams("t", messages, conn))
                time.sleep(0.05)  # held open while others publish and the readers read
                if i % 3 == 2:
                    conn.rollback()
                else:
                    conn.commit()
                    with lock:
                        committed.extend(got)
                conn.close()
        except BaseException as exc:
            errors.append(exc)

    def plain_publisher() -> None:
        try:
            mine = own_backend()
            for i in range(30):
                got = publish(mine, "t", ["plain", i])
                with lock:
                    committed.extend(got)
        except BaseException as exc:
            errors.append(exc)

    handed: list[int] = []

    def member() -> None:
        try:
            mine = own_backend()
            while not stop.is_set():
                pump(mine, "t", "g", limit=5)
                got = offsets(take(mine, "t", "g"))
                with lock:
                    handed.extend(got)
        except BaseException as exc:
            errors.append(exc)

    followed: list[int] = []

    def log_reader() -> None:
        """A plain read after its own cursor (on SQLite, a WAL reader beside the writers)."""
        try:
            mine = own_backend()
            cursor = 0
            while not stop.is_set():
                for message in mine.topics.read(MessageReadParams("t", after=cursor)):
                    followed.append(message.offset)
                    cursor = message.offset
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_publisher, args=(n,)) for n in range(3)]
    threads.append(threading.Thread(target=plain_publisher))
    readers = [threading.Thread(target=member) for _ in range(2)]
    readers.append(threading.Thread(target=log_reader))
    for thread in readers + threads:
        thread.start()
    for thread in threads:
        thread.join()
    stop.set()
    for thread in readers:
        thread.join()
    for app in apps:
        app.close()
    while pump(backend, "t", "g"):
        pass
    handed.extend(offsets(take(backend, "t", "g", 1000)))
    assert not errors, errors
    assert Counter(handed) == Counter(committed)  # each once, none missing
    # Rolled-back publishes gave their offsets back: the log has no hole.
    assert sorted(committed) == list(range(1, len(committed) + 1))
    # The reader saw offsets one by one, never passing one that appeared later.
    assert followed == list(range(1, len(followed) + 1))
    assert len(followed) > len(committed) // 2, "the reader did not follow the publishes"


def test_retention_by_count_prunes_the_oldest_and_counts_skips(backend: Backend) -> None:
    subscribe(backend, "t", "behind")
    subscribe(backend, "t", "ahead")
    subscribe(backend, "other", "g")
    publish(backend, "t", *range(10))
    publish(backend, "other", *range(10))  # no retention: kept whole
    pump(backend, "t", "ahead")
    pump(backend, "t", "behind", limit=2)
    assert backend.topics.prune() == 0  # no retention set yet
    backend.topics.retain(RetentionParams("t", max_messages=4))
    assert backend.topics.prune() == 6
    assert backend.topics.prune() == 0
    listed = {t.name: t for t in backend.topics.list()}
    assert (listed["t"].messages, listed["t"].first, listed["t"].last) == (4, 7, 10)
    assert listed["t"].retention_messages == 4 and listed["t"].retention_seconds is None
    groups = {g.name: (g.cursor, g.skipped, g.lag) for g in listed["t"].groups}
    # "behind" had 2 handed out (running: lag), skipped 3..6, and 7..10 are still to come.
    assert groups == {"ahead": (10, 0, 10), "behind": (6, 4, 6)}
    assert listed["other"].messages == 10
    assert pump(backend, "t", "behind") == 4
    assert sorted(offsets(take(backend, "t", "behind"))) == [1, 2, 7, 8, 9, 10]


def test_retention_by_time_removes_only_what_is_older(backend: Backend) -> None:
    subscribe(backend, "t", "g")
    publish(backend, "t", 1, 2, 3)
    backend.topics.retain(RetentionParams("t", seconds=60.0))
    assert backend.topics.prune() == 0
    later = backend.now() + timedelta(seconds=30)
    assert backend.topics.prune(later) == 0
    publish(backend, "t", 4)
    much_later = backend.now() + timedelta(seconds=120)
    assert backend.topics.prune(much_later) == 4
    (g,) = [g for t in backend.topics.list() for g in t.groups]
    assert (g.cursor, g.skipped, g.lag) == (4, 4, 0)
    # A replay to before what is retained moves the cursor to just before it.
    publish(backend, "t", 5)
    assert backend.topics.replay(ReplayParams("t", "g", offset=0)) == 4
    assert pump(backend, "t", "g") == 1


def stage_outcome(job: Job, *messages: tuple[str, str | None, Any]) -> Outcome:
    """A pipeline stage's success publishing `messages` (topic, key, value)."""
    publish = tuple((topic, key, orjson.dumps(value).decode()) for topic, key, value in messages)
    return Outcome(job.id, job.attempt, JobState.SUCCEEDED, result="null", publish=publish)


def test_finishes_publishing_to_two_topics_in_opposite_orders_both_complete(
    backend: Backend,
) -> None:
    """Each finish locks the topic rows it publishes to, in name order whatever the order of
    its messages: two finishes publishing to a and b (one b first) never deadlock."""
    rounds = 25
    insert(backend, 2 * rounds)
    jobs = backend.claims.claim(ClaimParams("w1", "default", 2 * rounds, 60.0))
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def finisher(mine: list[Job], topics: tuple[str, str]) -> None:
        try:
            start.wait(10)
            for job in mine:
                outcome = stage_outcome(job, (topics[0], None, job.id), (topics[1], None, job.id))
                assert backend.claims.finish(FinishParams("w1", [outcome])) == []
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=finisher, args=(jobs[:rounds], ("a", "b"))),
        threading.Thread(target=finisher, args=(jobs[rounds:], ("b", "a"))),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    for topic in ("a", "b"):
        read = backend.topics.read(MessageReadParams(topic, limit=1000))
        assert sorted(m.value for m in read) == sorted(job.id for job in jobs)


def test_a_stage_whose_lease_was_lost_publishes_nothing(backend: Backend) -> None:
    """Fencing: a stage's results land only with the outcome that is recorded. A worker whose
    lease ran out (the message rescued and taken by another) publishes nothing."""
    (job_id,) = insert(backend, 1)
    first = claim_one(backend, "w1", lease=SHORT_LEASE)
    expire_lease(backend, first)
    assert backend.claims.rescue(RescueParams()) == [job_id]
    second = claim_one(backend, "w2")
    late = stage_outcome(first, ("out", "k", "from w1"))
    assert backend.claims.finish(FinishParams("w1", [late])) == [job_id]  # lost: not recorded
    assert backend.topics.read(MessageReadParams("out")) == []
    recorded = stage_outcome(second, ("out", "k", "w2"))
    assert backend.claims.finish(FinishParams("w2", [recorded])) == []
    assert [m.value for m in backend.topics.read(MessageReadParams("out"))] == ["w2"]


def test_a_finish_batch_publishes_exactly_its_publishing_outcomes(backend: Backend) -> None:
    """Publishing and non-publishing outcomes in one batch, one of them fenced off: the
    recorded ones that publish do, each its own messages, and the others publish nothing."""
    insert(backend, 5)
    jobs = backend.claims.claim(ClaimParams("w1", "default", 4, 60.0))
    stale = claim_one(backend, "w1", lease=SHORT_LEASE)
    expire_lease(backend, stale)
    assert backend.claims.rescue(RescueParams()) == [stale.id]
    claim_one(backend, "w2")  # the stale attempt's job is w2's now
    outcomes = [
        stage_outcome(jobs[0], ("out", "a", 0), ("audit", None, 0)),
        Outcome(jobs[1].id, jobs[1].attempt, JobState.SUCCEEDED, result="1"),
        stage_outcome(jobs[2], ("out", "c", 2)),
        Outcome(jobs[3].id, jobs[3].attempt, JobState.DEAD, error=error_json()),
        stage_outcome(stale, ("out", "stale", 4)),
    ]
    assert backend.claims.finish(FinishParams("w1", outcomes)) == [stale.id]
    out = backend.topics.read(MessageReadParams("out"))
    assert sorted((m.key, m.value) for m in out) == [("a", 0), ("c", 2)]
    assert [m.value for m in backend.topics.read(MessageReadParams("audit"))] == [0]
    states = [backend.jobs.get(job.id).state for job in jobs]
    assert states == [JobState.SUCCEEDED] * 3 + [JobState.DEAD]


def test_a_paused_group_queue_is_not_pumped(backend: Backend, db_url: str) -> None:
    """Pausing a group's queue leaves its messages in the log (lag), not as jobs; resuming
    hands them out."""
    subscribe(backend, "t", "g")
    publish(backend, "t", 1, 2, 3)
    backend.queues.pause(group_queue("t", "g"), True)
    assert pump(backend, "t", "g") == 0
    assert RawDB(db_url).query("SELECT count(*) AS n FROM offload_jobs")[0]["n"] == 0
    state = group_of(backend, "t", "g")
    assert (state.cursor, state.lag) == (0, 3)
    backend.queues.pause(group_queue("t", "g"), False)
    assert pump(backend, "t", "g") == 3
    assert sorted(offsets(take(backend, "t", "g"))) == [1, 2, 3]


def test_a_group_queues_max_depth_bounds_the_deliveries_waiting(backend: Backend) -> None:
    """The pump hands out only the room max_depth leaves (never a QueueFull into the
    worker's claim); the rest waits in the log."""
    backend.queues.declare({group_queue("t", "g"): QueuePolicy(max_depth=2)}, {})
    subscribe(backend, "t", "g")
    publish(backend, "t", *range(5))
    assert pump(backend, "t", "g") == 2
    assert pump(backend, "t", "g") == 0  # full: no error, nothing handed out
    assert group_of(backend, "t", "g").cursor == 2
    assert offsets(take(backend, "t", "g", limit=1)) == [1]  # started: room for one
    assert pump(backend, "t", "g") == 1
    assert pump(backend, "t", "g") == 0
    assert sorted(offsets(take(backend, "t", "g"))) == [2, 3]
    assert pump(backend, "t", "g") == 2
    assert group_of(backend, "t", "g").cursor == 5


def test_a_group_started_at_a_future_time_gets_only_what_is_published_from_then(
    backend: Backend,
) -> None:
    """A start time in the future at subscribe time: the messages published before it are
    passed over, not delivered; those published at or after it are (this test expected
    the message published between the subscribe and the start time to be delivered)."""
    publish(backend, "t", 1, 2, 3)
    start = backend.now() + timedelta(seconds=0.5)
    subscribe(backend, "t", "later", start)
    subscribe(backend, "t", "ordered", start, ordered=True)
    publish(backend, "t", 4, key="k")
    for group in ("later", "ordered"):
        assert pump(backend, "t", group) == 0
        state = group_of(backend, "t", group)
        assert (state.cursor, state.lag) == (4, 0)  # passed over
    wait_db_time_past(backend, start)
    publish(backend, "t", 5, key="k")
    publish(backend, "t", 6, key="k")
    assert pump(backend, "t", "later") == 2
    assert sorted(offsets(take(backend, "t", "later"))) == [5, 6]
    assert pump(backend, "t", "ordered") == 1  # 6 waits behind 5, of the same key
    assert offsets(take(backend, "t", "ordered")) == [5]
    # A replay to a time keeps it likewise; a replay to an offset delivers every message.
    assert backend.topics.replay(ReplayParams("t", "later", at=start)) == 4
    assert pump(backend, "t", "later") == 2
    assert backend.topics.replay(ReplayParams("t", "later", offset=2)) == 2
    assert pump(backend, "t", "later") == 4


@pytest.mark.parametrize("move", ["subscribe", "replay"])
def test_a_cursor_placed_during_a_prune_is_not_left_below_its_floor(pg_url: str, move: str) -> None:
    """A prune held at its delete (a row lock taken beside it) while a new group subscribes
    from the earliest message, or a group the prune did not move replays to offset 0: the
    cursor must not be placed from the messages being removed, which would leave it below
    the new floor with nothing counted as skipped. Either order is right: the cursor ends
    at the floor (6). PostgreSQL only: on SQLite, with one writer at a time, a prune and a
    subscribe cannot interleave."""
    app = offload.App(pg_url)
    app.migrate()
    backend = app.backend
    try:
        cursor_after_prune(backend, pg_url, move)
    finally:
        app.close()


def cursor_after_prune(backend: Backend, pg_url: str, move: str) -> None:
    subscribe(backend, "t", "ahead")
    publish(backend, "t", *range(10))
    assert pump(backend, "t", "ahead", limit=8) == 8
    backend.topics.retain(RetentionParams("t", max_messages=4))
    errors: list[BaseException] = []

    def attempt(fn: Any) -> None:
        try:
            fn()
        except BaseException as exc:
            errors.append(exc)

    with psycopg.connect(pg_url) as holder:
        holder.execute(
            "SELECT 1 FROM offload_messages WHERE topic = 't' AND position = 1 FOR UPDATE"
        )
        prune = threading.Thread(target=attempt, args=(backend.topics.prune,))
        prune.start()
        deadline = time.monotonic() + 10
        waiting = (
            "SELECT count(*) AS n FROM pg_stat_activity "
            "WHERE wait_event_type = 'Lock' AND starts_with(query, 'DELETE FROM offload_messages')"
        )
        while RawDB(pg_url).query(waiting)[0]["n"] == 0:
            assert time.monotonic() < deadline, "the prune never reached its delete"
            time.sleep(0.01)

        def place() -> None:
            if move == "subscribe":
                subscribe(backend, "t", "new", "earliest")
            else:
                backend.topics.replay(ReplayParams("t", "ahead", offset=0))

        placing = threading.Thread(target=attempt, args=(place,))
        placing.start()
        placing.join(0.5)  # done at once (placed from the old floor), or waiting its turn
        holder.rollback()
    prune.join(10)
    placing.join(10)
    assert not errors, errors
    group = "new" if move == "subscribe" else "ahead"
    state = group_of(backend, "t", group)
    assert (state.cursor, state.skipped) == (6, 0)
    assert pump(backend, "t", group) == 4
