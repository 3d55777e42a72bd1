"""Moves this version refuses, each naming what cannot move and why: a topic, a consumer
group's queue (both live on the topic's shard, filled by its pump)."""

from __future__ import annotations

import pytest

import offload
from offload.backends.shards import ShardedBackend


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
