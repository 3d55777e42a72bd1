"""A worker does not spin: neither while its buffer waits for a busy slot, nor while limits
hold jobs back (it sleeps until a wake-up, a finished job, or a rate's next start)."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

import offload
from offload.backends.params import Claimed, ClaimParams
from offload.handle import JobHandle
from offload.runtime.executor import Event
from offload.runtime.pool import ExecutorPool
from offload.runtime.worker import Worker


def run_until_done(worker: Worker, handles: Sequence[JobHandle[None]], timeout: float) -> float:
    """Run `worker` in a thread until every job succeeded; return the seconds it took."""
    thread = threading.Thread(target=worker.run)
    start = time.monotonic()
    thread.start()
    try:
        while not all(h.status() is offload.JobState.SUCCEEDED for h in handles):
            assert time.monotonic() - start < timeout, [h.job() for h in handles]
            time.sleep(0.05)
        return time.monotonic() - start
    finally:
        worker.stop()
        thread.join(30)


def test_a_full_buffer_waiting_for_a_busy_slot_does_not_spin(app: offload.App) -> None:
    """One slot, jobs buffered behind a long run: past the poll time no claim can follow,
    so the loop sleeps until the run ends instead of turning with a zero timeout."""

    @app.task(name="slow")
    def slow() -> None:
        time.sleep(0.6)

    handles = slow.enqueue_many([()] * 3)
    worker = app.worker(
        executor="thread", concurrency=1, prefetch=4, poll_interval=0.1, install_signals=False
    )
    elapsed = run_until_done(worker, handles, 30)
    assert elapsed >= 1.8
    # Spinning made thousands of turns in the 1.5 s the buffer waited past the poll time.
    assert worker.turns < 100, worker.turns


def test_a_rate_limited_worker_sleeps_until_the_next_start(app: offload.App) -> None:
    @app.task(name="paced", rate_limit="2/s")
    def paced() -> None: ...

    handles = paced.enqueue_many([()] * 6)
    worker = app.worker(executor="thread", concurrency=4, poll_interval=5.0, install_signals=False)
    elapsed = run_until_done(worker, handles, 30)
    # Two now, two a second later, two a second after that: woken by the rate's hint, not
    # by the 5 s poll.
    assert 1.9 <= elapsed < 4.5, elapsed
    assert worker.turns < 60, worker.turns
    starts = sorted(t for h in handles if (t := h.job().started_at) is not None)
    assert len(starts) == len(handles)
    for i, first in enumerate(starts):
        assert sum(1 for s in starts[i:] if (s - first).total_seconds() < 1.0) <= 2, starts


def test_a_burst_worker_waits_for_jobs_a_rate_holds_back(app: offload.App) -> None:
    @app.task(name="paced", rate_limit="2/s")
    def paced() -> None: ...

    handles = paced.enqueue_many([()] * 4)
    worker = app.worker(executor="thread", concurrency=4, burst=True, install_signals=False)
    start = time.monotonic()
    assert worker.run() == 0
    assert time.monotonic() - start >= 0.9
    assert all(h.status() is offload.JobState.SUCCEEDED for h in handles)


def test_a_wake_up_alone_goes_straight_to_the_claim(app: offload.App) -> None:
    """An idle worker woken by an enqueue claims at once: with no executor descriptor
    ready and no deadline due, nothing ended, so the executors' poll (a system call per
    process child) is not made between the wake-up's drain and the claim."""

    @app.task(name="quick")
    def quick() -> None: ...

    log: list[str] = []
    worker = app.worker(executor="thread", concurrency=2, install_signals=False)
    backend = worker.backend
    open_listener = backend.listener

    def listener() -> Any:
        channel = open_listener()
        drain = channel.drain

        def logged() -> None:
            log.append("drain")
            drain()

        channel.drain = logged  # type: ignore[method-assign]
        return channel

    backend.listener = listener  # type: ignore[method-assign]
    make_pool = worker._make_pool

    def pool() -> ExecutorPool:
        made = make_pool()
        poll = made.poll

        def logged() -> list[Event]:
            log.append("poll")
            return poll()

        made.poll = logged  # type: ignore[method-assign]
        return made

    worker._make_pool = pool  # type: ignore[method-assign]
    take = backend.claims.take

    def logged_take(params: ClaimParams) -> Claimed:
        log.append("take")
        return take(params)

    backend.claims.take = logged_take  # type: ignore[method-assign]
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        time.sleep(0.3)  # idle in its wait
        for _ in range(5):
            handle = quick.enqueue()
            handle.result(timeout=10)
            time.sleep(0.1)
    finally:
        worker.stop()
        thread.join(30)
    after = [log[i + 1] for i, step in enumerate(log[:-1]) if step == "drain"]
    assert len(after) >= 5, log
    assert set(after) == {"take"}, log
