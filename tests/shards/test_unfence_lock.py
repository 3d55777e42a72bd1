"""The last unfence drops the fence trigger without deadlocking a producer that read
`offload_jobs` in its transaction and writes it next (the CI failure of a move under load:
the unfence held a weaker lock and asked for ACCESS EXCLUSIVE)."""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg

import offload
from offload.backends.postgres.shards import PgShards


def test_the_last_unfence_waits_for_a_reader_that_writes_and_never_deadlocks_it(
    pg_app: offload.App, pg_url: str
) -> None:
    backend: Any = pg_app.backend
    shards = PgShards(backend)
    shards.fence("gone", "elsewhere")  # the fence trigger exists now
    with psycopg.connect(pg_url) as producer:
        producer.execute("SET deadlock_timeout = '100ms'")
        producer.execute("SELECT count(*) FROM offload_jobs")  # holds ACCESS SHARE
        errors: list[BaseException] = []

        def unfence() -> None:
            try:
                shards.unfence("gone")  # the last fence: drops the trigger
            except BaseException as exc:
                errors.append(exc)

        dropping = threading.Thread(target=unfence)
        dropping.start()
        time.sleep(0.5)  # the unfence is waiting for the producer's ACCESS SHARE
        producer.execute(
            "INSERT INTO offload_jobs (task, queue, state, run_at, enqueued_at, sort_at)"
            " VALUES ('t', 'default', 'available', now(), now(), now())"
        )  # with the old lock order: "deadlock detected" here or in the unfence
        producer.commit()
        dropping.join(10)
    assert not dropping.is_alive() and errors == []
    assert shards.fences() == {}
