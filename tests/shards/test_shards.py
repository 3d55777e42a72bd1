"""An App over two PostgreSQL clusters: the shard map checked at start-up, jobs placed by
queue and found by id, a worker serving both, moves fenced in the database."""

from __future__ import annotations

from typing import Any

import pytest

import offload
from offload.backends.shards import SHARD_BITS, ShardedBackend, shard_of
from offload.core.options import EnqueueOptions
from offload.core.states import JobState

FAKE = {"one": "postgresql://localhost/one", "two": "postgresql://localhost/two"}


def _noop() -> None:
    return None


def placed_on(url: str, queue: str) -> dict[str, int]:
    """Jobs per state of `queue` in one database, read by a plain App on it alone."""
    alone = offload.App(url)
    try:
        return alone.queue_counts().get(queue, {})
    finally:
        alone.close()


def drain(app: offload.App, queues: list[str]) -> None:
    """Run every due job of `queues` in this process (one worker serving both shards)."""
    app.worker(queues=queues, burst=True, concurrency=2, executor="thread").run()


# -- the map, checked at start-up --------------------------------------------------------


def test_a_map_naming_an_unknown_shard_is_refused_naming_it() -> None:
    with pytest.raises(offload.UnknownShard) as caught:
        offload.App(shards=FAKE, shard_map={"tow": ["reports"]})
    assert caught.value.shard == "tow"
    assert caught.value.known == ["one", "two"]
    assert "did you mean 'two'?" in str(caught.value)


def test_a_queue_mapped_to_two_shards_is_refused_naming_both() -> None:
    with pytest.raises(offload.QueueOnTwoShards) as caught:
        offload.App(shards=FAKE, shard_map={"one": ["emails"], "two": ["reports", "emails"]})
    assert caught.value.queue == "emails"
    assert caught.value.shards == ["one", "two"]
    assert "'emails' on 2 shards ('one', 'two')" in str(caught.value)


def test_a_shard_given_a_string_for_its_queues_is_refused() -> None:
    # A string would be read as its letters, each a queue: refused instead.
    with pytest.raises(offload.ConfigurationError, match=r"shard_map\['two'\] must be a list"):
        offload.App(shards=FAKE, shard_map={"two": "reports"})


def test_a_shard_that_is_not_postgresql_is_refused(tmp_path: object) -> None:
    shards = {"one": FAKE["one"], "local": f"sqlite:///{tmp_path}/jobs.db"}
    with pytest.raises(offload.ConfigurationError, match=r"shard 'local'.*PostgreSQL databases"):
        offload.App(shards=shards)


def test_url_and_shards_together_or_a_map_alone_are_refused() -> None:
    with pytest.raises(offload.ConfigurationError, match="either url, or shards"):
        offload.App(FAKE["one"], shards=FAKE)
    with pytest.raises(offload.ConfigurationError, match="either url, or shards"):
        offload.App(shard_map={"two": ["reports"]})
    with pytest.raises(offload.ConfigurationError, match="at least one shard"):
        offload.App(shards={})


def test_shards_listed_in_another_order_than_migrated_are_refused(
    sharded: offload.App, shard_urls: dict[str, str]
) -> None:
    sharded.enqueue("report", [1])
    swapped = offload.App(shards={"two": shard_urls["two"], "one": shard_urls["one"]})
    try:
        with pytest.raises(offload.ShardMismatch) as caught:
            swapped.check()
        assert caught.value.shard == "two"
        assert "outside its range" in caught.value.reason
    finally:
        swapped.close()


# -- placement and routing ---------------------------------------------------------------


def test_jobs_go_to_their_queues_shard_and_their_ids_name_it(
    sharded: offload.App, shard_urls: dict[str, str]
) -> None:
    report = sharded.enqueue("report", [1])
    plain = sharded.enqueue("plain", [1])
    assert shard_of(report.id) == 1 and report.id >= 1 << SHARD_BITS
    assert shard_of(plain.id) == 0
    assert placed_on(shard_urls["two"], "reports") == {"available": 1}
    assert placed_on(shard_urls["one"], "default") == {"available": 1}
    assert placed_on(shard_urls["one"], "reports") == {}
    # Read, cancelled, listed and counted through the App, wherever they are.
    assert report.job().queue == "reports"
    assert {job.id for job in sharded.jobs()} == {report.id, plain.id}
    assert sharded.queue_counts() == {"reports": {"available": 1}, "default": {"available": 1}}
    assert sharded.cancel(report.id).state is JobState.CANCELLED
    with pytest.raises(offload.JobNotFound):
        sharded.job(5 << SHARD_BITS).job()


def test_one_worker_serves_queues_on_both_shards(sharded: offload.App) -> None:
    reports = [sharded.enqueue("report", [n]) for n in range(5)]
    plains = [sharded.enqueue("plain", [n]) for n in range(5)]
    drain(sharded, ["reports", "default"])
    assert [h.result(timeout=5) for h in reports] == [0, 2, 4, 6, 8]
    assert [h.result(timeout=5) for h in plains] == [1, 2, 3, 4, 5]


def test_a_workflow_over_two_shards_is_refused_and_one_within_a_shard_runs(
    sharded: offload.App,
) -> None:
    @sharded.task(name="double", queue="reports")
    def double(n: int) -> int:
        return n * 2

    @sharded.task(name="inc")
    def inc(n: int) -> int:
        return n + 1

    with pytest.raises(offload.CrossShard) as caught:
        offload.chain(double.s(1), sharded.signature("inc")).enqueue()
    assert caught.value.shards == {"reports": "two", "default": "one"}
    assert sharded.queue_counts() == {}  # nothing stored
    flow = offload.chain(double.s(1), sharded.signature("double")).enqueue()
    assert shard_of(flow.id) == 1
    drain(sharded, ["reports"])
    assert flow.result(timeout=5) == 4


# -- moves ---------------------------------------------------------------------------------


def test_a_moved_queue_takes_new_jobs_on_its_new_shard_and_a_stale_map_follows(
    sharded: offload.App, shard_urls: dict[str, str]
) -> None:
    before = sharded.enqueue("report", [1])
    stale = offload.App(shards=shard_urls, shard_map={"two": ["reports"]})
    stale.registry.add(sharded.registry.get("report"))
    try:
        stale.enqueue("report", [0])  # it has used the map: reports on two
        sharded.move_queue("reports", "one")
        after = sharded.enqueue("report", [2])
        followed = stale.enqueue("report", [3])  # refused by two, which names one
        assert [shard_of(h.id) for h in (before, after, followed)] == [1, 0, 0]
    finally:
        stale.close()
    assert placed_on(shard_urls["two"], "reports") == {"available": 2}
    assert placed_on(shard_urls["one"], "reports") == {"available": 2}
    # The jobs left on the old shard are still run: workers claim from every shard.
    drain(sharded, ["reports"])
    assert isinstance(sharded.backend, ShardedBackend)
    assert sharded.backend.unfinished("reports") == {"one": 0, "two": 0}
    assert before.result(timeout=5) == 2


def test_a_stale_maps_dependent_of_a_job_left_behind_is_refused_as_cross_shard(
    sharded: offload.App, shard_urls: dict[str, str]
) -> None:
    parent = sharded.enqueue("report", [1])  # on two
    mover = offload.App(shards=shard_urls, shard_map={"two": ["reports"]})
    try:
        mover.move_queue("reports", "one")  # another process: this App's map is stale
    finally:
        mover.close()
    with pytest.raises(offload.CrossShard) as caught:
        sharded.enqueue("report", [2], depends_on=[parent])
    assert caught.value.shards == {"reports": "one", f"job {parent.id}": "two"}
    assert placed_on(shard_urls["one"], "reports") == {}  # nothing stored
    assert placed_on(shard_urls["two"], "reports") == {"available": 1}


def test_an_idempotency_key_holds_on_each_side_of_a_move_not_across_it(
    sharded: offload.App,
) -> None:
    """What docs/sharding.md says under "Keys across a move"."""
    before = sharded.enqueue("report", [1], idempotency_key="order-42")
    assert sharded.enqueue("report", [1], idempotency_key="order-42").id == before.id
    sharded.move_queue("reports", "one")
    after = sharded.enqueue("report", [1], idempotency_key="order-42")
    assert (shard_of(before.id), shard_of(after.id)) == (1, 0)  # the new shard never saw it
    assert sharded.enqueue("report", [1], idempotency_key="order-42").id == after.id


def test_an_app_without_the_map_is_refused_by_the_old_shard_naming_the_new(
    sharded: offload.App, shard_urls: dict[str, str]
) -> None:
    sharded.move_queue("reports", "one")
    alone = offload.App(shard_urls["two"])
    alone.registry.add(sharded.registry.get("report"))
    try:
        with pytest.raises(offload.QueueMoved) as caught:
            alone.enqueue("report", [1])
        assert (caught.value.queue, caught.value.shard) == ("reports", "one")
    finally:
        alone.close()
    assert placed_on(shard_urls["two"], "reports") == {}


def test_a_queue_moved_back_is_accepted_again_and_fenced_on_the_other(
    sharded: offload.App, shard_urls: dict[str, str]
) -> None:
    sharded.move_queue("reports", "one")
    sharded.move_queue("reports", "two")
    assert shard_of(sharded.enqueue("report", [1]).id) == 1
    alone = offload.App(shard_urls["one"])
    alone.registry.add(sharded.registry.get("report"))
    try:
        with pytest.raises(offload.QueueMoved) as caught:
            alone.enqueue("report", [1])
        assert caught.value.shard == "two"
    finally:
        alone.close()


def test_a_move_to_an_unknown_shard_is_refused_naming_it(sharded: offload.App) -> None:
    with pytest.raises(offload.UnknownShard) as caught:
        sharded.move_queue("reports", "three")
    assert (caught.value.shard, caught.value.queue) == ("three", "reports")


def test_a_move_needs_a_sharded_app(tmp_path: object) -> None:
    alone = offload.App(f"sqlite:///{tmp_path}/jobs.db")
    try:
        with pytest.raises(offload.ConfigurationError, match="needs an App given shards"):
            alone.move_queue("reports", "two")
    finally:
        alone.close()


def test_coroutines_commit_together_per_shard_and_follow_a_move(
    sharded: offload.App, shard_urls: dict[str, str]
) -> None:
    import asyncio

    async def burst(app: offload.App) -> list[int]:
        report: offload.Task[..., Any] = offload.Task(
            app, app.registry.get("report"), EnqueueOptions()
        )
        plain: offload.Task[..., Any] = offload.Task(
            app, app.registry.get("plain"), EnqueueOptions()
        )
        handles = await asyncio.gather(
            *((report if n % 2 else plain).enqueue_async(n) for n in range(20))
        )
        return [handle.id for handle in handles]

    ids = asyncio.run(burst(sharded))
    assert [shard_of(i) for i in ids] == [0, 1] * 10  # one group commit per shard
    stale = offload.App(shards=shard_urls, shard_map={"two": ["reports"]})
    for name in ("report", "plain"):
        stale.registry.add(sharded.registry.get(name))
    try:
        asyncio.run(burst(stale))  # its map used: reports on two
        sharded.move_queue("reports", "one")
        moved = asyncio.run(burst(stale))  # two refuses the group's reports: they follow
    finally:
        stale.close()
    assert [shard_of(i) for i in moved] == [0, 0] * 10
    assert placed_on(shard_urls["two"], "reports") == {"available": 20}
    assert placed_on(shard_urls["one"], "reports") == {"available": 10}


def test_an_enqueue_in_the_callers_transaction_on_the_old_shard_is_refused_not_retried(
    sharded: offload.App, shard_urls: dict[str, str]
) -> None:
    import psycopg

    sharded.move_queue("reports", "one")
    stale = offload.App(shards=shard_urls, shard_map={"two": ["reports"]})
    stale.registry.add(sharded.registry.get("report"))
    try:
        with psycopg.connect(shard_urls["two"]) as conn:  # the caller's own transaction
            with pytest.raises(offload.QueueMoved) as caught:
                stale.enqueue("report", [1], conn=conn)
            assert caught.value.shard == "one"
            conn.rollback()
        # The move is learned: the next enqueue goes to shard one.
        assert shard_of(stale.enqueue("report", [2]).id) == 0
    finally:
        stale.close()
    assert placed_on(shard_urls["two"], "reports") == {}


def test_the_operators_reads_add_up_every_shard(sharded: offload.App) -> None:
    reports = [sharded.enqueue("report", [n]) for n in range(3)]
    sharded.enqueue("plain", [1])
    sharded.pause_queue("reports")  # a policy is written to every shard
    assert sharded.count_jobs() == 4
    assert {s.name: s.paused for s in sharded.queue_statuses() if s.name == "reports"} == {
        "reports": True
    }
    census = {(c.queue, str(c.state)): c.jobs for c in sharded.census().states}
    assert census[("reports", "available")] == 3 and census[("default", "available")] == 1
    drain(sharded, ["reports", "default"])  # paused on both shards: only default runs
    assert sharded.queue_counts() == {
        "default": {"succeeded": 1},
        "reports": {"available": 3},
    }
    sharded.resume_queue("reports")
    drain(sharded, ["reports"])
    assert [h.result(timeout=5) for h in reports] == [0, 2, 4]
    # A queue's events come from its shard; the chart's buckets add up both shards'.
    assert {e.job_id for e in sharded.events(queue="reports")} >= {h.id for h in reports}
    assert sum(point.succeeded for point in sharded.stats()) == 4
    assert sharded.cancel_many(queue="reports") == []  # finished: nothing to cancel
    assert sharded.purge(queue="reports") == 3
    assert sharded.count_jobs() == 1


def test_a_topic_lives_on_its_shard_with_its_groups_jobs(shard_urls: dict[str, str]) -> None:
    app = offload.App(shards=shard_urls, shard_map={"two": ["orders"]})
    seen: list[str] = []

    @app.subscriber("orders", group="billing", name="bill")
    def bill(message: offload.Message) -> None:
        seen.append(message.value)

    app.migrate()
    try:
        offsets = [app.publish("orders", f"order {n}") for n in range(3)]
        assert offsets == [1, 2, 3]
        assert [t.name for t in app.topics()] == ["orders"]
        alone = offload.App(shard_urls["two"])
        try:
            assert [t.name for t in alone.topics()] == ["orders"]  # stored on shard two
        finally:
            alone.close()
        drain(app, [bill_queue(app)])
        assert sorted(seen) == ["order 0", "order 1", "order 2"]
        jobs = app.jobs(queue=bill_queue(app))
        assert len(jobs) == 3 and {shard_of(job.id) for job in jobs} == {1}
    finally:
        app.close()


def bill_queue(app: offload.App) -> str:
    """The queue of the `bill` subscriber's group."""
    subscription = app.registry.get("bill").subscription
    assert subscription is not None
    return subscription.queue


def test_a_cron_schedules_queue_stays_on_the_home_shard(sharded: offload.App) -> None:
    sharded.schedule("report", "0 3 * * *", name="nightly", queue="nightly")
    with pytest.raises(offload.ValidationError, match="cron schedule 'nightly'"):
        sharded.move_queue("nightly", "two")
    sharded.schedule("plain", "0 4 * * *", name="tidy")  # the task's own queue: default
    with pytest.raises(offload.ValidationError, match="cron schedule 'tidy'"):
        sharded.move_queue("default", "two")
    sharded.move_queue("nightly", "one")  # to home: allowed (there already: nothing to do)
    with pytest.raises(offload.ValidationError, match="queue name"):
        sharded.move_queue("", "two")


def test_a_database_used_alone_is_refused_past_the_first_place(
    shard_urls: dict[str, str],
) -> None:
    alone = offload.App(shard_urls["two"])
    alone.migrate()
    alone.task(name="noop")(_noop)
    alone.enqueue("noop")
    alone.close()
    app = offload.App(shards=shard_urls)
    try:
        app.migrate()  # every shard's schema is current; two's ids now start at its floor
        with pytest.raises(offload.ShardMismatch) as caught:
            app.check()
        assert caught.value.shard == "two"
        assert "holds job id 1, outside its range" in caught.value.reason
    finally:
        app.close()


def test_claims_take_the_queues_shard_first_and_never_forget_an_old_one(
    sharded: offload.App,
) -> None:
    from offload.backends.params import ClaimParams
    from offload.backends.shards import FAIR_EVERY

    left = {sharded.enqueue("report", [n]).id for n in range(3)}  # on two
    sharded.move_queue("reports", "one")
    for n in range(4 * FAIR_EVERY):
        sharded.enqueue("report", [n])  # a backlog on one that fills every claim of 1
    claims = sharded.backend.claims
    taken = [
        claims.take(ClaimParams("test-worker", "reports", 1, 60.0)).jobs[0].id
        for _ in range(2 * FAIR_EVERY)
    ]
    old = [job_id for job_id in taken if job_id in left]
    assert 1 <= len(old) <= 2, taken  # one claim in FAIR_EVERY starts at each shard in turn
    assert len(taken) - len(old) >= 2 * FAIR_EVERY - 2


def test_every_queue_of_a_worker_gets_its_turns_at_the_old_shard(sharded: offload.App) -> None:
    from offload.backends.params import ClaimParams
    from offload.backends.shards import FAIR_EVERY
    from tests.conformance.helpers import insert

    backend = sharded.backend
    left = {queue: set(insert(backend, 3, queue=queue)) for queue in ("a", "b")}  # on one
    for queue in ("a", "b"):
        sharded.move_queue(queue, "two")
        insert(backend, 4 * FAIR_EVERY, queue=queue)  # a backlog on two, filling every claim
    old = {"a": 0, "b": 0}
    for _ in range(2 * FAIR_EVERY):  # a worker's rotation over its queues, one claim each
        for queue in ("a", "b"):
            job = backend.claims.take(ClaimParams("w", queue, 1, 60.0)).jobs[0]
            old[queue] += job.id in left[queue]
    assert old == {"a": 1, "b": 1}  # one claim in FAIR_EVERY per queue starts at each shard


def test_a_workers_heartbeat_learns_the_moves_its_claims_follow(
    sharded: offload.App, shard_urls: dict[str, str]
) -> None:
    stale = offload.App(shards=shard_urls, shard_map={"two": ["reports"]})
    try:
        backend = stale.backend
        assert isinstance(backend, ShardedBackend)
        sharded.move_queue("reports", "one")
        sharded.move_queue("reports", "two")
        sharded.move_queue("reports", "one")  # fences: two -> one (one's was lifted)
        assert backend.routes["reports"] == 1
        backend.workers.heartbeat("w1")
        assert backend.routes["reports"] == 0
    finally:
        stale.close()


def test_a_shard_or_queue_name_that_is_not_one_is_refused() -> None:
    with pytest.raises(offload.ConfigurationError, match="shard name must be 1-200"):
        offload.App(shards={"": FAKE["one"]})
    with pytest.raises(offload.ConfigurationError, match="queue name must be 1-200"):
        offload.App(shards=FAKE, shard_map={"two": [""]})
    with pytest.raises(offload.ConfigurationError, match="malformed PostgreSQL URL"):
        offload.App(shards={"one": "postgresql://"})


def test_a_fence_naming_a_shard_this_app_was_not_given_is_refused_naming_it(
    sharded: offload.App, shard_urls: dict[str, str]
) -> None:
    sharded.move_queue("reports", "one")  # two's fence names shard "one"
    renamed = offload.App(
        shards={"uno": shard_urls["one"], "dos": shard_urls["two"]},
        shard_map={"dos": ["reports"]},
    )
    renamed.registry.add(sharded.registry.get("report"))
    try:
        with pytest.raises(offload.UnknownShard) as caught:
            renamed.enqueue("report", [1])
        assert (caught.value.shard, caught.value.queue) == ("one", "reports")
        assert caught.value.known == ["uno", "dos"]
    finally:
        renamed.close()
    assert placed_on(shard_urls["two"], "reports") == {}  # nothing stored
