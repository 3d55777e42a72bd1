"""Many worker hosts on one PostgreSQL, as real hosts: network namespaces on a bridge, each
running its own worker processes, a producer in another (issue 22, items 1 to 3, CI size;
`benchmarks/multihost.py` measures the scaling).

Every run of a job is written by the task into a ledger with UNIQUE (job_id, attempt), so a
doubled claim fails loudly and a lost job shows as a missing row. These tests need root (to
make namespaces): without it they fail, they never skip.
"""

from __future__ import annotations

import re
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

import offload
from offload import JobState
from tests.hosts import ledger
from tests.hosts.cluster import Cluster, Connections
from tests.hosts.netns import Network, ip, sweep
from tests.sizes import sized

pytestmark = pytest.mark.timeout(180)

#: The fault tests' lease, and how long host a's link is cut: past the lease, the rescue
#: that follows (every 0.5 s) and the up to LEASE / 3 since a's last heartbeat.
LEASE = 4.0
CUT = 10.0
#: Connections one PostgreSQL worker holds at most: its budget (`--connections`, 2 by
#: default) and the wake-up channel's (docs/operations.md, "Few connections").
PER_WORKER = 2 + 1


def _wait(what: str, ready: Callable[[], bool], timeout: float, cluster: Cluster) -> None:
    """Poll `ready` until true; fail saying `what` after `timeout` or if a worker died."""
    deadline = time.monotonic() + timeout
    while not ready():
        cluster.check_alive()
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not after {timeout}s")
        time.sleep(0.2)


def _jobs(cluster: Cluster, ids: list[int]) -> dict[int, offload.Job]:
    """The stored rows of `ids`."""
    app = offload.App(cluster.url)
    try:
        return {job_id: app.job(job_id).job() for job_id in ids}
    finally:
        app.close()


def _all_done(cluster: Cluster, ids: list[int]) -> bool:
    return cluster.states(ids) == {JobState.SUCCEEDED.value: len(ids)}


def _ran_once_each(cluster: Cluster, ids: list[int]) -> list[ledger.Run]:
    """Assert each of `ids` ran exactly once, at attempt 1; their runs."""
    wanted = set(ids)
    runs = [run for run in ledger.runs(cluster.ledger_url) if run.job_id in wanted]
    assert sorted(run.job_id for run in runs) == sorted(ids), "lost or extra runs"
    assert {run.attempt for run in runs} == {1}
    return runs


@pytest.fixture(scope="module")
def healthy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Three hosts with one worker each (the CLI, `offload worker`), for the no-fault tests."""
    with Cluster(["h1", "h2", "h3"], log_dir=tmp_path_factory.mktemp("healthy")) as cluster:
        for name in cluster.names:
            cluster.start_workers(name, 1, concurrency=4)
        cluster.wait_registered(3)
        yield cluster


def test_namespaces_are_made_apart_and_removed_after_a_failure() -> None:
    """Each host answers on its own address; leaving on an error removes every namespace
    and link; a dead run's leftovers are swept by the next run."""
    with pytest.raises(RuntimeError, match="on purpose"), Network(["a", "b"]) as network:
        made = network.leftovers()
        assert len(made) == 5, made  # the bridge, 2 namespaces, 2 host-side veth ends
        a, b = network.hosts["a"], network.hosts["b"]
        assert a.address != b.address
        shown = subprocess.run(
            a.command(["ip", "-o", "-4", "addr", "show", "eth0"]),
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert f"inet {a.address}/24" in shown
        raise RuntimeError("on purpose")
    assert network.leftovers() == []

    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = f"ofh{dead.pid:x}x0n0"
    subprocess.run(["ip", "netns", "add", stale], check=True)
    assert stale in sweep()
    assert stale not in ip("netns", "list")


def test_jobs_drain_across_hosts_once_each_within_the_connection_budget(
    healthy: Cluster,
) -> None:
    """Jobs from the producer host drain on three worker hosts: every job runs exactly once,
    every host takes a share, and no host holds more connections than its budget."""
    stop, seen = threading.Event(), Connections()
    sampler = threading.Thread(target=healthy.sample_connections, args=(stop, seen))
    sampler.start()
    try:
        ids = healthy.produce("work", sized(3000, 20000), 0)
        _wait("every job succeeded", lambda: _all_done(healthy, ids), 60, healthy)
    finally:
        stop.set()
        sampler.join()
    runs = _ran_once_each(healthy, ids)
    assert {run.host for run in runs} == {"h1", "h2", "h3"}
    hosts = {healthy.host(name).address for name in healthy.names}
    assert seen.samples > 0 and hosts <= set(seen.most_by_address), seen
    for address in hosts:
        assert seen.most_by_address[address] <= PER_WORKER, seen
    assert all(job.attempt == 1 for job in _jobs(healthy, ids[:200]).values())


def test_limits_per_key_hold_across_hosts(healthy: Cluster) -> None:
    """A concurrency limit of 2 per key and a rate of 10/s per key, on three hosts at once:
    never more than 2 running per key (and 2 reached), never more than 10 starts of a key in
    any second, by the database's stamps."""
    ledger_before = {(run.job_id, run.attempt) for run in ledger.runs(healthy.ledger_url)}
    ids = healthy.produce("limits", 3, sized(8, 40), 0.2)
    _wait("the limited jobs ran", lambda: _all_done(healthy, ids), 90, healthy)
    runs = [
        run
        for run in ledger.runs(healthy.ledger_url)
        if (run.job_id, run.attempt) not in ledger_before
    ]
    capped = [run for run in runs if run.finished is not None]
    peaks = ledger.most_at_once(capped)
    assert set(peaks) == {"key0", "key1", "key2"}
    assert max(peaks.values()) == 2 and all(peak <= 2 for peak in peaks.values()), peaks
    assert len({run.host for run in capped}) > 1, "one host ran them all: nothing crossed hosts"

    stored = _jobs(healthy, ids)
    for key in ("key0", "key1", "key2"):
        starts = [
            job.started_at
            for job in stored.values()
            if job.task == "hosts.paced" and job.args[0] == key and job.started_at is not None
        ]
        assert len(starts) == sized(8, 40)
        assert ledger.busiest_window(starts, timedelta(seconds=1)) <= 10, key
    # Concurrency as the database saw it (claim to outcome), not only as the tasks did.
    for key in ("key0", "key1", "key2"):
        spans = [
            ledger.Run(j.id, j.attempt, "", key, j.started_at, j.finished_at)
            for j in stored.values()
            if j.task == "hosts.capped" and j.args[0] == key and j.started_at is not None
        ]
        assert ledger.most_at_once(spans)[key] <= 2, key


def test_pgbouncer_in_transaction_mode_bounds_server_connections(tmp_path: Path) -> None:
    """Four workers on two hosts reach PostgreSQL only through PgBouncer in transaction
    mode, lending 3 server connections: the server never sees more than 3 of them, and
    every job still runs exactly once."""
    with Cluster(["h1", "h2"], log_dir=tmp_path, bouncer="transaction", pool_size=3) as cluster:
        for name in cluster.names:
            cluster.start_workers(name, 2, concurrency=4)
        cluster.wait_registered(4)
        stop, seen = threading.Event(), Connections()
        sampler = threading.Thread(target=cluster.sample_connections, args=(stop, seen))
        sampler.start()
        try:
            ids = cluster.produce("work", sized(2000, 20000), 0)
            _wait(
                "every job ran",
                lambda: len(ledger.runs(cluster.ledger_url)) >= len(ids),
                90,
                cluster,
            )
        finally:
            stop.set()
            sampler.join()
        _ran_once_each(cluster, ids)
        assert seen.samples > 0 and 0 < seen.most <= 3, seen
        # Only PgBouncer (on this machine's loopback) talks to the server.
        assert set(seen.most_by_address) == {"127.0.0.1"}, seen


def _fault(cluster: Cluster, strike: str) -> None:
    """Hosts a, b, c (2 slots each, lease 4 s, rescue every 0.5 s, no prefetch: a claimed
    job is a started job, so the ledger sees every attempt); `strike` hits host a while it
    runs 2 jobs of 3 s, for longer than the lease. Its jobs run again elsewhere, stale
    outcomes are refused, and a works again afterwards. (A lease of 4 s leaves b and c
    2.7 s between heartbeats on a loaded machine before theirs would lapse too.)"""
    for name in cluster.names:
        cluster.start_workers(name, 1, concurrency=2, lease=LEASE, rescue=0.5, prefetch=0)
    cluster.wait_registered(3)
    ids = cluster.produce("work", 6, 3.0)

    def running_on_a() -> list[ledger.Run]:
        return [run for run in ledger.runs(cluster.ledger_url) if run.host == "a"]

    _wait("host a runs 2 jobs", lambda: len(running_on_a()) == 2, 30, cluster)
    a = cluster.host("a")
    held = {run.job_id for run in running_on_a()}
    if strike == "cut":
        a.cut()
        time.sleep(CUT)  # a's tasks end meanwhile: their outcomes wait for the link
        a.restore()
    else:
        assert a.kill(), "host a had no processes"
        _wait("host a's processes are gone", lambda: not a.pids(), 10, cluster)
        cluster.processes["a"].clear()
    _wait("every job succeeded", lambda: _all_done(cluster, ids), 60, cluster)

    runs = ledger.attempts(ledger.runs(cluster.ledger_url))
    assert sorted(runs) == sorted(ids), "a job never ran"
    again = {job_id for job_id, attempts in runs.items() if len(attempts) > 1}
    assert again == held, f"ran again: {again}, held by a: {held}"
    for job_id, job in _jobs(cluster, ids).items():
        last = runs[job_id][-1]
        assert [run.attempt for run in runs[job_id]] == list(range(1, len(runs[job_id]) + 1))
        # The stored outcome is the newest attempt's: a's late outcome changed nothing.
        assert (job.attempt, job.result) == (last.attempt, [last.host, last.attempt]), job
        if job_id in held:
            assert runs[job_id][0].host == "a" and last.host != "a"
    if strike == "cut":
        _wait(
            "a says its leases were lost",
            lambda: all(
                re.search(rf"job {job_id} .*lease lost", cluster.log("a")) for job_id in held
            ),
            30,
            cluster,
        )
    else:
        cluster.start_workers("a", 1, concurrency=2, lease=LEASE, rescue=0.5, prefetch=0)

    resumed = time.monotonic()
    more = cluster.produce("work", 60, 0.1)
    _wait(
        "host a runs jobs again",
        lambda: any(
            run.host == "a" and run.job_id in set(more) for run in ledger.runs(cluster.ledger_url)
        ),
        30,
        cluster,
    )
    _wait("the second batch succeeded", lambda: _all_done(cluster, more), 60, cluster)
    assert time.monotonic() - resumed < 60
    later = [run for run in ledger.runs(cluster.ledger_url) if run.job_id in set(more)]
    assert sorted(run.job_id for run in later) == sorted(more)
    assert "Traceback" not in cluster.log("b") + cluster.log("c")


def test_a_host_cut_off_longer_than_its_lease(tmp_path: Path) -> None:
    """Host a's cable is pulled for 10 s (lease 4 s) while it runs 2 jobs: b and c rescue
    and run them again; when the link returns a's outcomes are refused (its log says the
    leases were lost) and a takes new jobs."""
    with Cluster(["a", "b", "c"], log_dir=tmp_path) as cluster:
        _fault(cluster, "cut")


def test_a_host_killed_whole(tmp_path: Path) -> None:
    """Every process of host a is SIGKILLed at once while it runs 2 jobs: b and c rescue and
    run them again; a's workers, started again, take new jobs."""
    with Cluster(["a", "b", "c"], log_dir=tmp_path) as cluster:
        _fault(cluster, "kill")
