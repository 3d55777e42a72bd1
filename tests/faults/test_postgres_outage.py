"""Workers and producers ride out PostgreSQL outages: restarts, cut links, half-open links.

RELIABILITY.md tests 9, 10 and 12 at CI size; `scripts/soak_outages.py` runs the long
sizes. Every test runs real worker processes against a server of the module's own.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

import offload
from offload import BackendUnavailable, JobState
from offload.core.options import EnqueueOptions
from tests.faults.conftest import StartWorker, basic_app
from tests.faults.proxy import Proxy
from tests.pgserver import PostgresServer
from tests.sizes import sized

pytestmark = pytest.mark.timeout(240)

#: How soon work must resume once the server accepts connections again.
RESUME_WITHIN = 5.0


def _wait_all_succeeded(app: offload.App, ids: list[int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        counts = _states(app, ids)
        if counts.get(JobState.SUCCEEDED, 0) == len(ids):
            return
        if time.monotonic() > deadline:
            pytest.fail(f"after {timeout}s the {len(ids)} jobs are {counts}")
        time.sleep(0.2)


def _states(app: offload.App, ids: list[int]) -> dict[JobState, int]:
    """How many of `ids` are in each state (read in pages of 1,000)."""
    wanted = set(ids)
    counts: dict[JobState, int] = {}
    before: int | None = max(ids) + 1
    while before is not None:
        page = app.jobs(before_id=before, limit=1000)
        for job in page:
            if job.id in wanted:
                counts[job.state] = counts.get(job.state, 0) + 1
        before = page[-1].id if len(page) == 1000 and page[-1].id > min(ids) else None
    return counts


def _time_to_run(app: offload.App, timeout: float = 30.0) -> float:
    """Seconds a job enqueued now takes to succeed (first in line: the top priority)."""
    started = time.monotonic()
    handle = app.enqueue("add", [1, 2], priority=1000)
    assert handle.result(timeout=timeout) == 3
    return time.monotonic() - started


def _alive(workers: list[subprocess.Popen[bytes]], tmp_path: Path) -> None:
    for worker in workers:
        if worker.poll() is not None:
            logs = "\n".join(p.read_text()[-3000:] for p in tmp_path.glob("*.log"))
            pytest.fail(f"a worker exited with {worker.returncode} during the outage:\n{logs}")


def test_workers_ride_out_three_restarts(
    own_pg: PostgresServer, outage_url: str, start_worker: StartWorker, tmp_path: Path
) -> None:
    """5,000 jobs drain while the server restarts fast, immediate, immediate: no worker
    exits, no job is lost, and each time work resumes within 5 s of the server's return."""
    app = basic_app(outage_url)
    try:
        workers = [
            start_worker(outage_url, f"w{n}", executor="thread", concurrency=4, lease=10)
            for n in range(2)
        ]
        assert _time_to_run(app) < 30
        sleep: offload.Task[..., str] = offload.Task(
            app, app.registry.get("sleep"), EnqueueOptions()
        )
        ids = [h.id for h in sleep.enqueue_many([(0.004,)] * 5000)]
        for mode in ("fast", "immediate", "immediate"):
            time.sleep(1.0)  # jobs under way
            own_pg.halt(mode)
            time.sleep(2.0)
            _alive(workers, tmp_path)
            own_pg.start()
            resumed = _time_to_run(app, timeout=60)
            assert resumed < RESUME_WITHIN, f"work resumed {resumed:.1f}s after the restart"
        _wait_all_succeeded(app, ids, timeout=120)
        _alive(workers, tmp_path)
        logs = "".join(p.read_text() for p in tmp_path.glob("w*.log"))
        assert "Traceback" not in logs, logs[-3000:]
        assert "database unavailable" in logs and "database back after" in logs, logs[-3000:]
    finally:
        app.close()


def test_workers_ride_out_cut_links_and_producers_fail_fast(
    outage_url: str, proxy: Proxy, start_worker: StartWorker, tmp_path: Path
) -> None:
    """The link cut 3 x 10 s (full size, OFFLOAD_TEST_FULL=1: 5 x 10 s) during 5,000 jobs: no
    worker exits, no job is lost; during a cut a producer gets BackendUnavailable within its
    bound, and right after it, success."""
    direct = basic_app(outage_url)
    linked = basic_app(proxy.url(outage_url))
    try:
        workers = [
            start_worker(proxy.url(outage_url), f"w{n}", executor="thread", concurrency=4)
            for n in range(2)
        ]
        assert _time_to_run(direct) < 30
        sleep: offload.Task[..., str] = offload.Task(
            direct, direct.registry.get("sleep"), EnqueueOptions()
        )
        ids = [h.id for h in sleep.enqueue_many([(0.01,)] * 5000)]
        assert linked.enqueue("add", [0, 0]).id > 0  # the producer's connection is open
        for _ in range(sized(3, 5)):
            time.sleep(1.0)
            proxy.cut()
            started = time.monotonic()
            with pytest.raises(BackendUnavailable) as info:
                linked.enqueue("add", [1, 1])
            assert time.monotonic() - started < 6.0  # the connect timeout, 5 s
            assert f":{proxy.port}/" in str(info.value), str(info.value)
            time.sleep(10.0 - (time.monotonic() - started))
            _alive(workers, tmp_path)
            proxy.restore()
            started = time.monotonic()
            linked.enqueue("add", [2, 2])
            assert time.monotonic() - started < 1.0, "the first enqueue after the cut waited"
            resumed = _time_to_run(direct, timeout=60)
            assert resumed < RESUME_WITHIN, f"work resumed {resumed:.1f}s after the cut"
        _wait_all_succeeded(direct, ids, timeout=120)
        _alive(workers, tmp_path)
        logs = "".join(p.read_text() for p in tmp_path.glob("w*.log"))
        assert "Traceback" not in logs, logs[-3000:]
    finally:
        linked.close()
        direct.close()


def test_half_open_link_is_found_and_sigterm_still_stops_the_worker(
    outage_url: str, proxy: Proxy, start_worker: StartWorker, tmp_path: Path
) -> None:
    """A blackholed link (bytes accepted, never answered) is found within 30 s, and a
    SIGTERM then stops the worker within its grace period plus 5 s."""
    direct = basic_app(outage_url)
    try:
        worker = start_worker(
            proxy.url(outage_url), "w", executor="thread", concurrency=2, shutdown_timeout=5
        )
        assert _time_to_run(direct) < 30
        long_job = direct.enqueue("sleep", [3.0])
        time.sleep(0.5)
        proxy.blackhole()
        started = time.monotonic()
        log = tmp_path / "w.log"
        while "database unavailable" not in log.read_text():
            assert time.monotonic() - started < 30, "the half-open link was not found in 30 s"
            assert worker.poll() is None, log.read_text()
            time.sleep(0.2)
        found = time.monotonic() - started
        worker.send_signal(signal.SIGTERM)
        stopped = time.monotonic()
        code = worker.wait(5 + 5 + 1)
        assert time.monotonic() - stopped < 10, "SIGTERM took longer than grace + 5 s"
        assert code == 0, log.read_text()
        assert found < 30
        proxy.restore()
        # The job ran to its end; its outcome could not be written, so it runs again.
        assert long_job.status() in (JobState.RUNNING, JobState.SUCCEEDED)
    finally:
        direct.close()


def test_ambiguous_commit_is_reported_and_a_keyed_retry_leaves_one_job(
    outage_url: str, proxy: Proxy
) -> None:
    """The connection resets right after the server committed an enqueue, before the client
    heard: the caller gets success or OutcomeUnknown, never a silent double or a false
    failure; retrying with the same idempotency key leaves exactly one job each time. (An
    enqueue with a key is a transaction of several statements: the fault hits its COMMIT.)"""
    linked = basic_app(proxy.url(outage_url))
    direct = basic_app(outage_url)
    try:
        linked.enqueue("add", [-1, -1])  # open the connection before the fault
        unknown = 0
        for n in range(20):
            key = f"order-{n}"
            proxy.swallow_commit_replies()
            try:
                linked.enqueue("add", [n, n], idempotency_key=key)
            except offload.OutcomeUnknown as exc:
                unknown += 1
                assert "may or may not" in str(exc)
            proxy.restore()
            handle = linked.enqueue("add", [n, n], idempotency_key=key)
            assert handle.job().kwargs == {} and handle.job().args == [n, n]
        assert unknown == 20  # every reply was swallowed after the commit
        keyed = [j for j in direct.jobs(limit=1000) if j.args != [-1, -1]]
        assert sorted(j.args[0] for j in keyed) == list(range(20))
    finally:
        linked.close()
        direct.close()


def test_producer_fails_within_its_bound_and_recovers_at_once(
    own_pg: PostgresServer, outage_url: str, proxy: Proxy
) -> None:
    """A server that is down refuses at once, a link that swallows everything within the
    URL's connect_timeout; either way the call after the server's return succeeds at once
    (no reconnect backoff is left over)."""
    direct = basic_app(outage_url)
    silent = basic_app(proxy.url(outage_url) + "?connect_timeout=2")
    try:
        direct.enqueue("add", [0, 0])
        own_pg.halt("fast")
        try:
            started = time.monotonic()
            with pytest.raises(BackendUnavailable) as info:
                direct.enqueue("add", [1, 1])
            assert time.monotonic() - started < 1.0
            assert "Connection refused" in str(info.value), str(info.value)
            assert info.value.transient
        finally:
            own_pg.start()
        started = time.monotonic()
        direct.enqueue("add", [2, 2])
        assert time.monotonic() - started < 1.0

        proxy.blackhole()
        started = time.monotonic()
        with pytest.raises(BackendUnavailable, match="timeout"):
            silent.enqueue("add", [3, 3])
        assert 1.5 < time.monotonic() - started < 3.5
        proxy.restore()
        started = time.monotonic()
        silent.enqueue("add", [4, 4])
        assert time.monotonic() - started < 1.0
    finally:
        silent.close()
        direct.close()
