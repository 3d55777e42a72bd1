"""Holding a duty is tied to doing it: a holder whose duty step keeps failing (a shard it
cannot reach, while the lease row on the home shard answers) gives the duty up, so another
candidate takes it; and a scheduler's failed rescue does not stop its upkeep."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

import offload
from offload.core.errors import BackendUnavailable
from offload.runtime.leader import RESCUE, UPKEEP
from offload.runtime.scheduler import Scheduler
from offload.runtime.worker import Worker
from tests.election.test_elected_rescue import counting_rescues

#: The duties' lease: longer than the longest wait after a failed turn (`outage.MAX_DELAY`),
#: so that a holder whose duty fails would renew it in time if nothing tied the two.
LEASE = 6.0


def failing_rescues(app: offload.App, counts: Counter[str], key: str) -> None:
    """Make `app`'s rescue fail as an unreachable shard does, counting the tries."""
    claims: Any = app.backend.claims

    def unreachable(*_args: Any) -> list[int]:
        counts[key] += 1
        raise BackendUnavailable("shard 2 unreachable from this host")

    claims.rescue = unreachable


def holder(app: offload.App, duty: str) -> str | None:
    return next((lease.holder for lease in app.duties() if lease.name == duty), None)


def wait_for(check: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


def test_a_scheduler_whose_rescue_fails_hands_the_duty_to_a_worker_and_keeps_upkeep(
    migrated_db_url: str,
) -> None:
    failing, working, reader = (offload.App(migrated_db_url) for _ in range(3))
    counts: Counter[str] = Counter()
    failing_rescues(failing, counts, "scheduler")
    counting_rescues(working, counts, "worker")
    scheduler = Scheduler(
        failing.backend,
        failing.registry,
        [],
        interval=0.05,
        rescue_interval=0.1,
        sweep_interval=0.1,
        leader_lease=LEASE,
        install_signals=False,
    )
    sweep = scheduler.sweeper.sweep

    def counted_sweep() -> None:
        counts["sweep"] += 1
        sweep()

    scheduler.sweeper.sweep = counted_sweep  # type: ignore[method-assign]
    threads = [threading.Thread(target=scheduler.run)]
    threads[0].start()
    workers: list[Worker | None] = [None]
    try:
        assert wait_for(lambda: counts["scheduler"] >= 1, 10), counts  # it took rescue first
        worker = workers[0] = Worker(
            working.backend,
            working.registry,
            executor="thread",
            concurrency=1,
            rescue_interval=0.1,
            leader_lease=LEASE,
            install_signals=False,
        )
        threads.append(threading.Thread(target=worker.run))
        threads[1].start()
        # Within about a lease (the one it read at its start) it holds the duty and rescues.
        assert wait_for(lambda: holder(reader, RESCUE) == worker.id, 3 * LEASE), reader.duties()
        assert wait_for(lambda: counts["worker"] >= 3, 5), counts
        # The failing rescue did not stop the scheduler's upkeep: it still holds and sweeps.
        assert holder(reader, UPKEEP) == scheduler.id
        swept = counts["sweep"]
        assert wait_for(lambda: counts["sweep"] >= swept + 3, 5), counts
    finally:
        scheduler.stop()
        if workers[0] is not None:
            workers[0].stop()
        for thread in threads:
            thread.join(30)
        for app in (failing, working, reader):
            app.close()


def test_a_worker_whose_rescue_fails_hands_the_duty_to_another_worker(
    migrated_db_url: str,
) -> None:
    failing, working, reader = (offload.App(migrated_db_url) for _ in range(3))
    counts: Counter[str] = Counter()
    failing_rescues(failing, counts, "failing")
    counting_rescues(working, counts, "working")
    settings: dict[str, Any] = {
        "executor": "thread",
        "concurrency": 1,
        "rescue_interval": 0.1,
        "leader_lease": LEASE,
        "install_signals": False,
    }
    first = Worker(failing.backend, failing.registry, **settings)
    threads = [threading.Thread(target=first.run)]
    threads[0].start()
    second = None
    try:
        assert wait_for(lambda: counts["failing"] >= 1, 10), counts  # it took the duty first
        second = Worker(working.backend, working.registry, **settings)
        threads.append(threading.Thread(target=second.run))
        threads[1].start()
        assert wait_for(lambda: holder(reader, RESCUE) == second.id, 3 * LEASE), reader.duties()
        assert wait_for(lambda: counts["working"] >= 3, 5), counts
    finally:
        first.stop()
        if second is not None:
            second.stop()
        for thread in threads:
            thread.join(30)
        for app in (failing, working, reader):
            app.close()
