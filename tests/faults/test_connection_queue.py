"""The PostgreSQL backend's connections are handed out first come, first served: a caller
waiting for one is never passed over by callers arriving after it (with more callers than
connections, a caller used to lose every returned connection to newcomers and fail with
"all N connections stayed busy" while others were served)."""

from __future__ import annotations

import threading
import time

from offload.backends.postgres.backend import PostgresBackend
from offload.core.errors import BackendUnavailable


def test_a_waiting_caller_is_served_before_a_later_one(pg_url: str) -> None:
    backend = PostgresBackend(pg_url, pool_size=1)
    connections, kind = backend.connections, backend._durable
    order: list[str] = []
    queued = threading.Event()
    try:
        with connections.connection(kind):

            def waiter() -> None:
                queued.set()
                with connections.connection(kind):
                    order.append("waiter")

            first = threading.Thread(target=waiter)
            first.start()
            queued.wait(5)
            deadline = time.monotonic() + 5
            while not connections._waiting:  # the waiter is in line
                assert time.monotonic() < deadline, "the waiter never queued"
                time.sleep(0.001)
        # Given back: this thread asks again at once, but the waiter came first.
        with connections.connection(kind):
            order.append("newcomer")
        first.join(5)
        assert order == ["waiter", "newcomer"]
    finally:
        backend.close()


def test_many_callers_on_few_connections_are_all_served_within_the_wait(pg_url: str) -> None:
    backend = PostgresBackend(pg_url, pool_size=2)
    connections, kind = backend.connections, backend._durable
    errors: list[BaseException] = []
    served = [0] * 24

    def caller(i: int) -> None:
        try:
            for _ in range(40):
                with connections.connection(kind) as conn:
                    conn.execute("SELECT pg_sleep(0.001)")
                served[i] += 1
        except BackendUnavailable as exc:
            errors.append(exc)

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(24)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    backend.close()
    assert not errors, errors[:3]
    assert served == [40] * 24
