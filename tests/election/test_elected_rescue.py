"""Workers elect one rescuer; rescue does not depend on it: a killed leader's jobs, and the
jobs of a worker killed beside it, are rescued by the survivors. Bad election settings are
refused by name."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

import offload
from offload.core.errors import ElectionSettingInvalid
from offload.core.states import JobState
from offload.runtime.leader import RESCUE
from offload.runtime.worker import Worker
from tests.runtime.conftest import StartWorker


def counting_rescues(app: offload.App, counts: Counter[str], key: str) -> None:
    """Count the rescue statements `app`'s backend runs, under `key`."""
    claims: Any = app.backend.claims
    rescue: Callable[..., list[int]] = claims.rescue

    def counted(*args: Any) -> list[int]:
        counts[key] += 1
        return rescue(*args)

    claims.rescue = counted


@pytest.mark.parametrize("elect", [True, False], ids=["elected", "every"])
def test_only_the_holder_of_the_rescue_duty_rescues(migrated_db_url: str, elect: bool) -> None:
    apps = [offload.App(migrated_db_url) for _ in range(3)]
    counts: Counter[str] = Counter()
    workers = []
    for index, app in enumerate(apps):
        counting_rescues(app, counts, f"w{index}")
        worker = Worker(
            app.backend,
            app.registry,
            executor="thread",
            concurrency=1,
            rescue_interval=0.1,
            leader_lease=1.0,
            install_signals=False,
            elect=elect,
        )
        workers.append(worker)
    threads = [threading.Thread(target=worker.run) for worker in workers]
    for thread in threads:
        thread.start()
    time.sleep(2.0)
    for worker in workers:
        worker.stop()
    for thread in threads:
        thread.join(30)
    for app in apps:
        app.close()
    rescuers = sorted(key for key, count in counts.items() if count >= 5)
    if elect:
        assert len(rescuers) == 1, counts  # the holder, every 0.1 s
        assert sum(counts.values()) - counts[rescuers[0]] == 0, counts
    else:
        assert rescuers == ["w0", "w1", "w2"], counts


def test_the_jobs_of_a_killed_leader_are_rescued_by_the_others(
    basic_app: offload.App, start_worker: StartWorker
) -> None:
    """Three worker processes; the rescue duty's holder and one other are SIGKILLed while
    running jobs: the survivor takes the duty within its lease and reruns every job."""
    settings = {
        "executor": "thread",
        "concurrency": 1,
        "prefetch": 0,
        "lease": 1.5,
        "rescue": 0.2,
        "poll": 0.1,
    }
    processes = {p.pid: p for p in (start_worker(**settings) for _ in range(3))}
    deadline = time.monotonic() + 30
    while (lease := basic_app.backend.leaders.read(RESCUE)) is None or lease.remaining <= 0:
        assert time.monotonic() < deadline, "no worker took the rescue duty"
        time.sleep(0.05)
    leader = int(lease.holder.split(":")[1])
    assert leader in processes
    handles = [basic_app.enqueue("whoami", [3.0]) for _ in range(3)]  # one per worker
    deadline = time.monotonic() + 30
    while True:
        jobs = [h.job() for h in handles]
        running = [j for j in jobs if j.state is JobState.RUNNING and j.worker]
        pids = {int(str(j.worker).split(":")[1]) for j in running}
        if len(pids) == 3:
            break
        assert time.monotonic() < deadline, f"the jobs never ran one on each worker: {jobs}"
        time.sleep(0.02)
    victims = [leader, next(pid for pid in pids if pid != leader)]
    for pid in victims:
        os.kill(pid, signal.SIGKILL)
        processes[pid].wait()
    killed_at = time.monotonic()
    results = [h.result(timeout=60) for h in handles]
    survivor = next(pid for pid in processes if pid not in victims)
    lost = [j for j in (h.job() for h in handles) if j.attempt == 2]
    assert len(lost) == 2, "the two killed workers' jobs were not both rerun"
    for job in lost:
        assert [e["type"] for e in job.errors] == ["WorkerLost"]
    assert sorted(pid for (pid,) in results) == [survivor] * 3
    new = basic_app.backend.leaders.read(RESCUE)
    assert new is not None and new.term > lease.term
    assert new.holder.split(":")[1] == str(survivor)
    # Rerun after the job lease (1.5 s) and the duty's lease (its default: the job lease),
    # plus the rescue interval and a run of 3 s: well within 15 s.
    assert time.monotonic() - killed_at < 15


@pytest.mark.parametrize(
    ("settings", "setting"),
    [
        ({"elect": "yes"}, "elect"),
        ({"leader_lease": 0.1}, "leader_lease"),
        ({"leader_lease": float("nan")}, "leader_lease"),
        ({"leader_lease": 7200}, "leader_lease"),
        ({"leader_lease": "10"}, "leader_lease"),
        ({"leader_lease": True}, "leader_lease"),
    ],
)
def test_bad_election_settings_are_refused_by_name(
    app: offload.App, settings: dict[str, Any], setting: str
) -> None:
    for make in (app.worker, app.scheduler):
        options: dict[str, Any] = {"executor": "thread"} if make == app.worker else {}
        with pytest.raises(ElectionSettingInvalid) as refused:
            make(**options, **settings)
        assert refused.value.setting == setting
        assert refused.value.value is settings[setting]
        assert setting in str(refused.value)


@pytest.mark.parametrize(
    ("lease", "leader_lease"),
    [(7200.0, 20.0), (60.0, 20.0), (5.0, 5.0), (0.2, 0.5)],
    ids=["past-the-max", "long", "short", "below-the-min"],
)
def test_the_worker_s_default_leader_lease_is_its_lease_capped_at_the_scheduler_s(
    app: offload.App, lease: float, leader_lease: float
) -> None:
    """A job lease past `MAX_LEADER_LEASE` (valid before the election) starts a worker, and
    a long-lease worker holding the rescue duty holds it no longer than the default lease."""
    worker = app.worker(executor="thread", lease=lease)
    assert worker.elector is not None
    assert worker.elector.lease == leader_lease
