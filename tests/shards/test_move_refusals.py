"""Moves this version refuses, each naming what cannot move and why: a topic, a consumer
group's queue (both live on the topic's shard, filled by its pump); and moves serialized."""

from __future__ import annotations

import threading
import time

import pytest

import offload
from offload.backends.shards import ShardedBackend, shard_of


def test_a_topic_and_a_group_queue_are_refused_and_nothing_is_fenced(
    shard_urls: dict[str, str],
) -> None:
    app = offload.App(shards=shard_urls, shard_map={"two": ["orders"]})

    @app.subscriber("orders", group="billing", name="bill")
    def bill(message: offload.Message) -> None:
        return None

    app.migrate()
    try:
        subscription = app.registry.get("bill").subscription
        assert subscription is not None
        with pytest.raises(offload.ValidationError, match="'topic:orders:billing' holds a con"):
            app.move_queue(subscription.queue, "one")
        with pytest.raises(offload.ValidationError, match="'orders' is a topic"):
            app.move_queue("orders", "one")
        app.publish("audit", "stored by a publisher alone")  # a topic no subscriber names
        with pytest.raises(offload.ValidationError, match="'audit' is a topic"):
            app.move_queue("audit", "two")
        backend = app.backend
        assert isinstance(backend, ShardedBackend)
        assert [member.store.fences() for member in backend.members] == [{}, {}]
        assert backend.routes == {"orders": 1}
    finally:
        app.close()


def test_a_move_waits_for_one_in_flight_and_starts_where_it_left_the_queue(
    sharded: offload.App, shard_urls: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    first = sharded.backend
    assert isinstance(first, ShardedBackend)
    fencing, go_on = threading.Event(), threading.Event()
    fence = first.members[1].store.fence

    def slow_fence(queue: str, shard: str) -> None:
        fencing.set()
        assert go_on.wait(10)
        fence(queue, shard)

    monkeypatch.setattr(first.members[1].store, "fence", slow_fence)
    other = offload.App(shards=shard_urls, shard_map={"two": ["reports"]})
    other.registry.add(sharded.registry.get("report"))
    try:
        back = threading.Thread(target=sharded.move_queue, args=("reports", "one"))
        back.start()
        assert fencing.wait(10)  # the first move is in flight: one unfenced, two not yet fenced
        # Another process's move of the same queue, on a map where it is on two: without
        # the lock it would find no fence on two, do nothing, and believe "reports" is there.
        again = threading.Thread(target=other.move_queue, args=("reports", "two"))
        again.start()
        again.join(0.5)
        assert again.is_alive(), "the second move waits for the first"
        go_on.set()
        back.join(10)
        again.join(10)
        assert not back.is_alive() and not again.is_alive()
        stores = [member.store for member in first.members]
        assert [store.fences() for store in stores] == [{"reports": "two"}, {}]
        assert shard_of(other.enqueue("report", [1]).id) == 1
        assert shard_of(sharded.enqueue("report", [2]).id) == 1  # followed the fence on one
    finally:
        go_on.set()
        other.close()


def test_an_unfence_racing_a_fence_on_the_same_shard_keeps_its_trigger(
    sharded: offload.App, shard_urls: dict[str, str]
) -> None:
    import psycopg

    sharded.move_queue("q2", "two")  # shard one: fence q2 -> two, the trigger on
    backend = sharded.backend
    assert isinstance(backend, ShardedBackend)
    store = backend.members[0].store
    queries = store.q  # type: ignore[attr-defined]
    with psycopg.connect(shard_urls["one"]) as moving, psycopg.connect(shard_urls["one"]) as look:
        look.autocommit = True
        moving.execute(queries["fence_trigger"])  # a fence of q1 in flight on shard one
        moving.execute(queries["fence"], {"queue": "q1", "shard": "two"})
        back = threading.Thread(target=store.unfence, args=("q2",))  # q2 coming back
        back.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # until the unfence waits for the fence's lock
            waiting = look.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND datname = current_database()"
            ).fetchone()
            if waiting and waiting[0]:
                break
            time.sleep(0.02)
        moving.commit()
        back.join(10)
        assert not back.is_alive()
    assert store.fences() == {"q1": "two"}
    alone = offload.App(shard_urls["one"])
    alone.registry.add(sharded.registry.get("plain"))
    try:
        with pytest.raises(offload.QueueMoved, match="'q1' was moved to shard 'two'"):
            alone.enqueue("plain", [1], queue="q1")
    finally:
        alone.close()
