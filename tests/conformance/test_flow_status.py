"""Queue policies changed at run time (`App.set_queue`, pause, resume) and what
`App.queue_statuses` reports per queue: policy, pause, drain rate, oldest wait, limits in
force, jobs held back by a concurrency limit, shed jobs and the workers serving it."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest

import offload
from offload.core.flow import QueuePolicy, Rate, TaskLimits
from offload.core.records import WorkerInfo
from offload.core.status import QueueStatus
from tests.conformance.helpers import RawDB


def _policy(app: offload.App, name: str) -> QueuePolicy | None:
    found = [state.policy for state in app.queue_policies() if state.name == name]
    return found[0] if found else None


def _rows(db_url: str) -> list[dict[str, Any]]:
    """Every stored queue row (the run-time state a refused change must leave alone)."""
    return RawDB(db_url).query("SELECT * FROM offload_queues ORDER BY name")


def _noop(app: offload.App) -> offload.Task[[], None]:
    @app.task(name="noop")
    def noop() -> None:
        return None

    return noop


# -- set_queue --------------------------------------------------------------------------------


def test_set_queue_changes_the_given_fields_and_keeps_the_others(app: offload.App) -> None:
    app.queue("mail", max_depth=100, concurrency=2)

    changed = app.set_queue("mail", max_depth=50, rate_limit="20/s", aging=5)

    expected = QueuePolicy(max_depth=50, concurrency=2, rate=Rate(20, 1.0), aging=5)
    assert changed == expected
    assert _policy(app, "mail") == expected


def test_set_queue_none_clears_a_bound_and_restores_a_default(app: offload.App) -> None:
    app.queue("mail", max_depth=100, concurrency=2, rate_limit="5/m", aging=10, overload="refuse")

    app.set_queue("mail", concurrency=None, rate_limit=None, aging=None)

    assert _policy(app, "mail") == QueuePolicy(max_depth=100)


def test_set_queue_shed_depth_brings_its_own_resume_depth(app: offload.App) -> None:
    app.queue("feed", shed_priority=0, shed_depth=100)
    assert _policy(app, "feed") == QueuePolicy(shed_priority=0, shed_depth=100, resume_depth=50)

    app.set_queue("feed", shed_depth=40)
    assert _policy(app, "feed") == QueuePolicy(shed_priority=0, shed_depth=40, resume_depth=20)

    app.set_queue("feed", shed_depth=None, shed_priority=None)
    assert _policy(app, "feed") == QueuePolicy()


def test_set_queue_on_a_queue_with_jobs_but_no_policy_stores_one(app: offload.App) -> None:
    _noop(app).enqueue()

    app.set_queue("default", max_depth=10)

    assert _policy(app, "default") == QueuePolicy(max_depth=10)
    assert app.queue_policies()[0].paused is False


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"max_depth": 0}, "max_depth must be an int >= 1, got 0"),
        ({"max_depth": -5}, "got -5"),
        ({"concurrency": 0}, "concurrency must be an int >= 1, got 0"),
        ({"rate_limit": "fast"}, "rate limit 'fast' does not parse"),
        ({"rate_limit": "0/s"}, "rate limit '0/s'"),
        ({"admit_depth": 200}, "admit_depth=200 is above max_depth=100"),
        ({"max_depth": 10}, "admit_depth=50 is above max_depth=10"),
        ({"overload": "drop"}, "overload must be one of refuse, shed, got 'drop'"),
        ({"aging": -1}, "aging must be >= 0"),
        ({"max_dept": 5}, "no queue setting 'max_dept'; did you mean 'max_depth'?"),
    ],
)
def test_set_queue_refuses_bad_values_and_changes_nothing(
    app: offload.App, db_url: str, changes: dict[str, Any], named: str
) -> None:
    app.queue("mail", max_depth=100, admit_depth=50)
    before = _rows(db_url)

    with pytest.raises(offload.ValidationError) as caught:
        app.set_queue("mail", **changes)

    assert named in str(caught.value)
    assert _rows(db_url) == before


def test_an_unknown_queue_is_refused_naming_the_known_ones(app: offload.App, db_url: str) -> None:
    _noop(app).enqueue()  # "default" has jobs
    app.queue("mail", max_depth=10)  # "mail" has a policy
    now = app.backend.now()
    app.backend.workers.register(WorkerInfo("w1", "h", 1, ["reports"], 1, now, now))
    before = _rows(db_url)

    with pytest.raises(offload.QueueNotFound) as near:
        app.set_queue("mial", max_depth=5)
    assert near.value.name == "mial"
    assert "unknown queue 'mial'; did you mean 'mail'?" in str(near.value)
    for call in (app.pause_queue, app.resume_queue):
        with pytest.raises(offload.QueueNotFound) as far:
            call("zzz")
        assert "unknown queue 'zzz'; known queues: default, mail, reports" in str(far.value)
    assert _rows(db_url) == before

    app.set_queue("reports", max_depth=5)  # known through the worker serving it
    assert _policy(app, "reports") == QueuePolicy(max_depth=5)


def test_pause_and_resume_keep_the_policy(app: offload.App) -> None:
    app.queue("mail", max_depth=10)

    app.pause_queue("mail")
    [state] = app.queue_policies()
    assert (state.paused, state.policy) == (True, QueuePolicy(max_depth=10))
    assert _status(app, "mail").paused is True

    app.resume_queue("mail")
    [state] = app.queue_policies()
    assert (state.paused, state.policy) == (False, QueuePolicy(max_depth=10))
    assert _status(app, "mail").paused is False


# -- queue_statuses ---------------------------------------------------------------------------


def _status(app: offload.App, name: str) -> QueueStatus:
    found = {status.name: status for status in app.queue_statuses()}
    return found[name]


def _worker(app: offload.App, db_url: str, worker_id: str, rates: str, *, lost: bool) -> None:
    """A registered worker serving q1 and q2 that measured `rates` (JSON), maybe long silent."""
    now = app.backend.now()
    app.backend.workers.register(WorkerInfo(worker_id, "h", 1, ["q1", "q2"], 2, now, now))
    raw = RawDB(db_url)
    cast = "?" if raw.sqlite else "?::json"
    raw.execute(f"UPDATE offload_workers SET rates = {cast} WHERE id = ?", [rates, worker_id])
    if lost:
        hour = 3600 if raw.sqlite else timedelta(hours=1)
        raw.execute(
            "UPDATE offload_workers SET heartbeat_at = heartbeat_at - ? WHERE id = ?",
            [hour, worker_id],
        )


def _set_job(db_url: str, job_id: int, state: str, limit_key: str | None = None) -> None:
    RawDB(db_url).execute(
        "UPDATE offload_jobs SET state = ?, limit_key = ? WHERE id = ?",
        [state, limit_key, job_id],
    )


def test_queue_statuses_report_flow_control_per_queue(app: offload.App, db_url: str) -> None:
    @app.task(name="send")
    def send(to: str) -> None:
        return None

    app.queue("q1", concurrency=1, rate_limit="20/s")
    app.queue("empty", max_depth=5)
    app.backend.queues.declare({}, {"send": TaskLimits(concurrency=1, keyed=True)})
    raw = RawDB(db_url)

    # q1: one job running fills the queue's concurrency of 1; two due jobs wait behind it
    # (one of them for 100 s), one is not due yet, one was shed.
    _noop(app)
    q1 = [app.enqueue("noop", queue="q1").id for _ in range(3)]
    app.enqueue("noop", queue="q1", delay=3600)
    shed = app.enqueue("noop", queue="q1").id
    _set_job(db_url, q1[0], "running")
    _set_job(db_url, shed, "shed")
    back = 100 if raw.sqlite else timedelta(seconds=100)
    raw.execute("UPDATE offload_jobs SET run_at = run_at - ? WHERE id = ?", [back, q1[1]])
    # q2: key "a" has its one slot taken, so the other "a" jobs wait; "b" jobs do not.
    q2 = {key: app.enqueue("send", [key], queue="q2").id for key in ("a1", "a2", "a3", "b1")}
    for name, job_id in q2.items():
        _set_job(db_url, job_id, "running" if name == "a1" else "available", name[0])
    _worker(app, db_url, "live-1", '{"q1": 1.5}', lost=False)
    _worker(app, db_url, "live-2", '{"q1": 2.0, "q2": 0.5}', lost=False)
    _worker(app, db_url, "gone", '{"q1": 100.0, "q2": 100.0}', lost=True)

    statuses = {status.name: status for status in app.queue_statuses()}

    assert list(statuses) == ["empty", "q1", "q2"]
    s1, s2, empty = statuses["q1"], statuses["q2"], statuses["empty"]
    assert s1.counts == {"running": 1, "available": 2, "scheduled": 1, "shed": 1}
    assert (s1.held, s1.shed, s1.paused) == (2, 1, False)
    assert s1.drain_rate == pytest.approx(3.5)
    assert s1.oldest_available is not None and 100 <= s1.oldest_available < 160
    assert s1.policy == QueuePolicy(concurrency=1, rate=Rate(20, 1.0))
    assert s1.limits == ["1 at once", "20/s"]
    assert s1.task_limits == {}
    assert (s1.workers, s1.served) == (["live-1", "live-2"], True)

    assert s2.counts == {"running": 1, "available": 3}
    assert (s2.held, s2.shed) == (2, 0)
    assert s2.drain_rate == pytest.approx(0.5)
    assert s2.policy is None
    assert s2.task_limits == {"send": TaskLimits(concurrency=1, keyed=True)}
    assert s2.limits == ["send: 1 at once per key"]
    assert s2.oldest_available is not None and 0 <= s2.oldest_available < 60

    assert empty.counts == {} and empty.workers == [] and not empty.served
    assert (empty.held, empty.drain_rate, empty.oldest_available) == (0, 0.0, None)
    assert empty.policy == QueuePolicy(max_depth=5) and empty.limits == []


def test_a_task_limited_as_a_whole_holds_back_all_its_jobs(app: offload.App, db_url: str) -> None:
    @app.task(name="report")
    def report(n: int) -> None:
        return None

    app.backend.queues.declare({}, {"report": TaskLimits(concurrency=2)})
    ids = [report.enqueue(n).id for n in range(5)]
    for job_id in ids[:2]:
        _set_job(db_url, job_id, "running", "")
    for job_id in ids[2:]:
        _set_job(db_url, job_id, "available", "")
    assert _status(app, "default").held == 3
    assert _status(app, "default").limits == ["report: 2 at once"]

    _set_job(db_url, ids[0], "succeeded", "")  # a slot is free: nothing is held back
    assert _status(app, "default").held == 0


def test_concurrent_changes_of_different_settings_all_land(app: offload.App, db_url: str) -> None:
    app.queue("mail", max_depth=1000)
    values: dict[str, Any] = {
        "admit_depth": int,
        "concurrency": int,
        "admit_priority": int,
        "aging": float,
        "max_wait": float,
        "rate_limit": lambda n: f"{n}/s",
    }
    apps = {setting: offload.App(db_url) for setting in values}
    failures: list[BaseException] = []

    def change(setting: str) -> None:
        """Set one setting 20 times; a change that lost another's would undo it."""
        try:
            for n in range(1, 21):
                apps[setting].set_queue("mail", **{setting: values[setting](n)})
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=change, args=(setting,)) for setting in values]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for other in apps.values():
        other.close()

    assert failures == []
    assert _policy(app, "mail") == QueuePolicy(
        max_depth=1000, admit_depth=20, admit_priority=20, max_wait=20.0, aging=20.0,
        concurrency=20, rate=Rate(20, 1.0),
    )  # fmt: skip
