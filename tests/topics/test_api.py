"""Topics through the Python API, on both backends, run by a burst worker in this process:
every group gets every message, dead messages stay visible without blocking, ordered
groups keep a key's order, pipelines publish with the acknowledgement, and bad input
stores nothing."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

import offload
from offload.backends.params import MessageReadParams
from offload.core.errors import GroupNotFound, OffsetOutOfRange, ValidationError
from tests.conformance.helpers import RawDB


def run(app: offload.App, **options: Any) -> None:
    """Run a burst worker of every group `app` declares until nothing is left."""
    options = {"executor": "thread", "concurrency": 4, **options}
    worker = app.worker(burst=True, install_signals=False, **options)
    assert worker.run() == 0


def topic_rows(db_url: str) -> tuple[list[dict[str, Any]], ...]:
    """Every stored row of the topics area and the jobs, to compare before and after."""
    raw = RawDB(db_url)
    return tuple(
        raw.query(f"SELECT * FROM {table} ORDER BY 1, 2")
        for table in ("offload_topics", "offload_groups", "offload_messages", "offload_jobs")
    )


def test_every_group_gets_every_message(app: offload.App) -> None:
    seen: dict[str, list[int]] = defaultdict(list)
    received: list[tuple[str, int, Any]] = []
    lock = threading.Lock()
    for name in ("indexer", "mailer"):

        def handle(message: offload.Message, name: str = name) -> None:
            with lock:  # asserted below: an assert here would only fail this delivery
                seen[name].append(message.offset)
                received.append((message.topic, message.offset, message.value))

        app.subscriber("orders", group=name, name=f"handle-{name}")(handle)
    assert [app.publish("orders", {"n": i}) for i in range(1, 6)] == [1, 2, 3, 4, 5]
    assert app.publish_many("orders", [{"n": 6}, {"n": 7}]) == [6, 7]
    run(app)
    assert all(topic == "orders" and value == {"n": offset} for topic, offset, value in received), (
        received
    )
    assert {name: sorted(offsets) for name, offsets in seen.items()} == {
        "indexer": list(range(1, 8)),
        "mailer": list(range(1, 8)),
    }
    (topic,) = app.topics()
    assert (topic.name, topic.messages, topic.last) == ("orders", 7, 7)
    assert [(g.name, g.cursor, g.lag, g.dead) for g in topic.groups] == [
        ("indexer", 7, 0, 0),
        ("mailer", 7, 0, 0),
    ]


def test_a_dead_message_is_kept_and_does_not_block(app: offload.App) -> None:
    done: list[int] = []

    @app.subscriber("t", group="g", max_attempts=1, ordered_by_key=True)
    def handle(message: offload.Message) -> None:
        if message.value == "bad":
            raise RuntimeError("cannot")
        done.append(message.offset)

    app.publish("t", "bad", key="k")
    app.publish("t", "fine", key="k")
    run(app)
    assert done == [2]
    (group,) = app.topics()[0].groups
    assert (group.dead, group.lag) == (1, 0)
    (dead,) = app.jobs(state="dead")
    assert dead.args[0]["offset"] == 1


def test_ordered_group_runs_a_key_in_publish_order(app: offload.App) -> None:
    running: set[str] = set()
    order: dict[str, list[int]] = defaultdict(list)
    lock = threading.Lock()
    overlaps: list[str] = []
    starts: list[tuple[str, int]] = []

    @app.subscriber("t", group="g", ordered_by_key=True)
    def handle(message: offload.Message) -> None:
        # Record, never assert: an assert here would only fail this delivery (retried),
        # not the test. What it saw is checked below.
        key = str(message.key)
        with lock:
            if key in running:
                overlaps.append(key)
            running.add(key)
            starts.append((key, message.offset))
        threading.Event().wait(0.002)
        with lock:
            running.discard(key)
            order[key].append(message.value)

    keys = [f"k{i % 3}" for i in range(60)]
    app.publish_many("t", list(range(60)), keys=keys)
    run(app)
    assert not overlaps
    # Each message started once, and a key's messages started in offset order.
    assert sorted(offset for _, offset in starts) == list(range(1, 61))
    for r in range(3):
        started = [offset for key, offset in starts if key == f"k{r}"]
        assert started == [i + 1 for i in range(60) if i % 3 == r]
    assert {k: v for k, v in order.items()} == {
        f"k{r}": [i for i in range(60) if i % 3 == r] for r in range(3)
    }
    assert not app.jobs(state="dead") and not app.jobs(state="retrying")


def test_replay_delivers_again_what_follows(app: offload.App) -> None:
    seen: list[int] = []

    @app.subscriber("t", group="g")
    def handle(message: offload.Message) -> None:
        seen.append(message.offset)

    app.publish_many("t", list(range(10)))
    run(app)
    assert app.replay("t", "g", offset=7) == 7
    run(app)
    assert sorted(seen) == sorted([*range(1, 11), 8, 9, 10])


def test_a_stage_publishes_its_result_with_the_acknowledgement(
    app: offload.App, db_url: str
) -> None:
    @app.subscriber("urls", group="fetchers", publish_to="pages")
    def fetch(message: offload.Message) -> dict[str, Any] | None:
        if message.value == "skip":
            return None  # nothing to publish
        return {"url": message.value, "size": len(message.value)}

    stored: list[Any] = []

    @app.subscriber("pages", group="writer", start="earliest")
    def write(message: offload.Message) -> None:
        stored.append((message.key, message.value))

    app.publish("urls", "https://a.example", key="a")
    app.publish("urls", "skip")
    app.publish("urls", "https://bb.example", key="b")
    run(app)
    assert sorted(stored) == [
        ("a", {"url": "https://a.example", "size": 17}),
        ("b", {"url": "https://bb.example", "size": 18}),
    ]
    rows = RawDB(db_url).query("SELECT count(*) AS n FROM offload_messages WHERE topic = 'pages'")
    assert rows[0]["n"] == 2


def handle_nothing(message: offload.Message) -> None:
    """A subscriber for declarations that must be refused."""


@pytest.fixture
def stored(app: offload.App, db_url: str) -> Iterator[None]:
    """A topic with a retention, a group and a message stored, and the app in use (so a
    subscriber declared now is stored at once): afterwards every row must be as it was."""

    @app.subscriber("t", group="g", start="earliest")
    def handle(message: offload.Message) -> None: ...

    app.set_retention("t", days=1)
    app.publish("t", 1)
    before = topic_rows(db_url)
    yield
    assert topic_rows(db_url) == before, "a refused call changed what is stored"


@pytest.mark.parametrize(
    "name",
    ["", "x" * 101, "has space", "semi;colon", "colon:inside", "-leading", "ünï"],
)
@pytest.mark.usefixtures("stored")
def test_bad_names_store_nothing(app: offload.App, name: str) -> None:
    with pytest.raises(ValidationError):
        app.publish(name, 1)
    with pytest.raises(ValidationError):
        app.publish_many(name, [1])
    with pytest.raises(ValidationError):
        app.subscriber(name, group="g2")(handle_nothing)
    with pytest.raises(ValidationError):
        app.subscriber("t", group=name)(handle_nothing)
    with pytest.raises(ValidationError):
        app.subscriber("t", group="g2", publish_to=name)(handle_nothing)
    with pytest.raises(ValidationError):
        app.set_retention(name, days=1)
    with pytest.raises(ValidationError):
        app.replay(name, "g", offset=0)
    with pytest.raises(ValidationError):
        app.replay("t", name, offset=0)


@pytest.mark.parametrize("start", ["newest", -1, True, 2**63, 1.5, datetime(2026, 1, 1), None])
@pytest.mark.usefixtures("stored")
def test_a_bad_start_is_refused(app: offload.App, start: Any) -> None:
    with pytest.raises(ValidationError, match="start must be"):
        app.subscriber("t", group="g2", start=start)(handle_nothing)


def test_bad_messages_and_replays_store_nothing(app: offload.App, db_url: str) -> None:
    @app.subscriber("t", group="g")
    def handle(message: offload.Message) -> None: ...

    app.publish("t", 1)
    raw = RawDB(db_url)
    before = raw.query("SELECT * FROM offload_messages"), raw.query("SELECT * FROM offload_groups")
    with pytest.raises(ValidationError, match="message 1"):
        app.publish_many("t", [1, {1, 2}])
    with pytest.raises(ValidationError):
        app.publish("t", float("nan"))
    with pytest.raises(ValidationError):
        app.publish("t", 1, key="k" * 201)
    with pytest.raises(GroupNotFound):
        app.replay("t", "nobody", offset=0)
    with pytest.raises(OffsetOutOfRange):
        app.replay("t", "g", offset=2)
    with pytest.raises(ValidationError):
        app.replay("t", "g", offset=-1)
    with pytest.raises(ValidationError):
        app.replay("t", "g")
    after = raw.query("SELECT * FROM offload_messages"), raw.query("SELECT * FROM offload_groups")
    assert after == before


def test_the_scheduler_prunes_by_retention(app: offload.App) -> None:
    @app.subscriber("t", group="g")
    def handle(message: offload.Message) -> None: ...

    app.set_retention("t", max_messages=2)
    app.publish_many("t", list(range(5)))
    app.scheduler().prune()
    (topic,) = app.topics()
    assert (topic.messages, topic.first, topic.retention_messages) == (2, 4, 2)
    assert [(g.cursor, g.skipped, g.lag) for g in topic.groups] == [(3, 3, 2)]
    app.set_retention("t", days=7)  # each call sets both bounds
    (topic,) = app.topics()
    assert (topic.retention_seconds, topic.retention_messages) == (7 * 86400.0, None)


@pytest.mark.parametrize(
    "bad",
    [
        {"days": 0},
        {"days": -1},
        {"days": float("nan")},
        {"days": True},
        {"max_messages": 0},
        {"max_messages": 1.5},
        {"max_messages": 2**63},
    ],
)
@pytest.mark.usefixtures("stored")
def test_bad_retention_stores_nothing(app: offload.App, bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        app.set_retention("t", **bad)
    with pytest.raises(ValidationError):
        app.set_retention("new", **bad)


def test_a_subscriber_publishes_with_current_message(app: offload.App) -> None:
    @app.subscriber("orders", group="splitter", max_attempts=1)
    def split(message: offload.Message) -> int:
        delivery = offload.current_message()
        assert delivery.message == message
        for item in message.value:
            delivery.publish("items", item, key=message.key)
        if message.value == ["bad"]:
            delivery.publish("items", {1, 2})  # not JSON: the run fails, nothing published
        delivery.publish("audit", {"order": message.offset})
        return len(message.value)

    app.publish("orders", ["a", "b"], key="k1")
    app.publish("orders", ["bad"], key="k2")
    app.publish("orders", [], key="k3")
    run(app)
    items = app.backend.topics.read(MessageReadParams("items"))
    assert [(m.offset, m.key, m.value) for m in items] == [(1, "k1", "a"), (2, "k1", "b")]
    audit = app.backend.topics.read(MessageReadParams("audit"))
    assert sorted(m.value["order"] for m in audit) == [1, 3]
    results = sorted(job.result for job in app.jobs(state="succeeded"))
    assert results == [0, 2]  # the value returned, without what it published
    (dead,) = app.jobs(state="dead")
    assert dead.last_error is not None
    assert dead.last_error["type"] == "offload.core.errors.SerializationError"


def test_current_message_outside_a_subscriber_raises() -> None:
    with pytest.raises(offload.OffloadError, match="outside a subscriber"):
        offload.current_message()


def test_a_publish_wakes_a_waiting_member(app: offload.App) -> None:
    """A member idle on its wake-up channel (a poll far away) pumps at once on a publish."""
    got = threading.Event()

    @app.subscriber("t", group="g")
    def handle(message: offload.Message) -> None:
        got.set()

    worker = app.worker(executor="thread", install_signals=False, poll_interval=60.0)
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        time.sleep(0.5)  # idle by now: its first claims found nothing
        app.publish("t", 1)
        assert got.wait(5.0), "the member was not woken"
    finally:
        worker.stop()
        thread.join(30)


@pytest.mark.parametrize(
    ("call", "named"),
    [
        ({"messages": ["a", "b", "c"], "keys": "abc"}, "keys"),
        ({"messages": "abc"}, "messages"),
        ({"messages": b"abc"}, "messages"),
        ({"messages": "abc", "keys": ["a", "b", "c"]}, "messages"),
    ],
)
def test_a_str_for_a_sequence_is_refused_storing_nothing(
    app: offload.App, db_url: str, call: dict[str, Any], named: str
) -> None:
    app.publish("t", "already here", key="k")
    before = topic_rows(db_url)
    with pytest.raises(ValidationError, match=named):
        app.publish_many("t", **call)
    assert topic_rows(db_url) == before


def test_a_paused_group_is_not_pumped_until_resumed(app: offload.App, db_url: str) -> None:
    seen: list[int] = []

    @app.subscriber("t", group="g")
    def handle(message: offload.Message) -> None:
        seen.append(message.offset)

    app.pause_queue("topic:t:g")  # known as a declared group's queue, before any job
    app.publish_many("t", [1, 2, 3])
    run(app)
    assert seen == []
    assert RawDB(db_url).query("SELECT count(*) AS n FROM offload_jobs")[0]["n"] == 0
    assert [(g.cursor, g.lag) for g in app.topics()[0].groups] == [(0, 3)]
    app.resume_queue("topic:t:g")
    run(app)
    assert sorted(seen) == [1, 2, 3]


def test_a_group_queue_with_max_depth_delivers_everything(app: offload.App) -> None:
    seen: list[int] = []
    app.queue("topic:t:g", max_depth=2)

    @app.subscriber("t", group="g")
    def handle(message: offload.Message) -> None:
        seen.append(message.offset)

    app.publish_many("t", list(range(10)))
    run(app, concurrency=1)
    assert sorted(seen) == list(range(1, 11))


@pytest.mark.parametrize(
    "setting",
    [
        {"admit_depth": 5},
        {"max_wait": 10.0},
        {"shed_depth": 5, "shed_priority": 1},
    ],
)
def test_a_group_queue_refuses_settings_that_refuse_or_shed(
    app: offload.App, db_url: str, setting: dict[str, Any]
) -> None:
    @app.subscriber("t", group="g")
    def handle(message: offload.Message) -> None: ...

    with pytest.raises(ValidationError, match="queue 'topic:t:g' is a consumer group's"):
        app.queue("topic:t:g", **setting)
    app.publish("t", 1)
    before = RawDB(db_url).query("SELECT * FROM offload_queues")
    with pytest.raises(ValidationError, match="queue 'topic:t:g' is a consumer group's"):
        app.set_queue("topic:t:g", **setting)
    assert RawDB(db_url).query("SELECT * FROM offload_queues") == before
    assert app.set_queue("topic:t:g", max_depth=5, concurrency=2).max_depth == 5


def test_a_stage_publishing_over_the_payload_limit_fails_alone(app: offload.App) -> None:
    """What a stage publishes is bounded as App.publish bounds a message (payload_limit),
    not by the larger result limit: over it, that delivery fails, naming the message; the
    others of the same batch are recorded and publish."""
    app.payload_limit = 200

    @app.subscriber("in", group="stage", publish_to="out", max_attempts=1)
    def stage(message: offload.Message) -> str:
        if message.value == "big":
            offload.current_message().publish("side", "s")  # lands with the ack or not at all
        return "x" * (300 if message.value in ("big", "huge") else 10)

    app.publish_many("in", ["small", "big", "fine", "huge"])
    run(app, concurrency=1)
    out = app.backend.topics.read(MessageReadParams("out"))
    assert [m.value for m in out] == ["x" * 10, "x" * 10]
    assert app.backend.topics.read(MessageReadParams("side")) == []
    dead = sorted(app.jobs(state="dead"), key=lambda job: job.args[0]["offset"])
    assert [job.args[0]["offset"] for job in dead] == [2, 4]
    for job in dead:
        assert job.last_error is not None
        assert job.last_error["type"] == "offload.core.errors.PayloadTooLarge"
        assert "a message published to 'out' is 302 bytes" in job.last_error["message"]
        assert "over the limit of 200 bytes" in job.last_error["message"]
    assert len(app.jobs(state="succeeded")) == 2
