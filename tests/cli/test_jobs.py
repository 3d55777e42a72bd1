"""`offload enqueue`, `status`, `jobs`, `queues`, `cancel` and `retry`."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

import offload
from offload.core.records import WorkerInfo
from tests.cli.helpers import assert_one_line_error, offload_cli, run_json
from tests.conformance.helpers import RawDB

# -- enqueue and status ---------------------------------------------------------------------


def test_enqueue_stores_the_job_with_the_given_options(
    store: offload.App, env: dict[str, str]
) -> None:
    result = offload_cli(
        "enqueue",
        "add",
        "--args",
        "[2, 3]",
        "--queue",
        "q1",
        "--priority",
        "5",
        "--max-attempts",
        "2",
        env=env,
    )
    assert result.returncode == 0, result.stderr
    job = store.job(int(result.stdout.strip())).job()
    assert (job.task, job.args, job.kwargs, job.queue) == ("add", [2, 3], {}, "q1")
    assert (job.priority, job.max_attempts, job.state) == (5, 2, offload.JobState.AVAILABLE)

    delayed = run_json("enqueue", "sleep", "--kwargs", '{"seconds": 0.1}', "--delay", "60", env=env)
    job = store.job(delayed["id"]).job()
    assert job.kwargs == {"seconds": 0.1}
    assert job.state is offload.JobState.SCHEDULED
    assert (job.run_at - job.enqueued_at).total_seconds() == pytest.approx(60, abs=1)


def test_enqueue_of_an_unknown_task_stores_nothing(store: offload.App, env: dict[str, str]) -> None:
    result = offload_cli("enqueue", "ad", "--args", "[1, 2]", env=env)
    assert_one_line_error(result, 1, "unknown task 'ad'", "did you mean 'add'?")
    assert result.stdout == ""
    assert store.jobs() == []


@pytest.mark.parametrize(
    ("option", "value", "problem"),
    [
        ("--args", "[1, 2", "is not JSON"),
        ("--args", "(1, 2)", "is not JSON"),
        ("--args", '{"a": 1}', "is not a JSON array"),
        ("--kwargs", "[1]", "is not a JSON object"),
    ],
)
def test_enqueue_refuses_arguments_that_are_not_the_right_json(
    store: offload.App, env: dict[str, str], option: str, value: str, problem: str
) -> None:
    result = offload_cli("enqueue", "add", option, value, env=env)
    assert_one_line_error(result, 2, f"Invalid value for '{option}'", problem)
    assert store.jobs() == []


def test_enqueue_with_a_channel_publishes_the_job_s_events_on_it(
    store: offload.App, env: dict[str, str]
) -> None:
    job_id = run_json("enqueue", "add", "--args", "[1, 2]", "--channel", "user:42", env=env)["id"]
    assert store.job(job_id).job().channel == "user:42"
    assert [e.job_id for e in store.events(channel="user:42")] == [job_id]
    result = offload_cli("enqueue", "add", "--args", "[1, 2]", "--channel", "", env=env)
    assert_one_line_error(result, 1, "channel must be 1-255 characters")
    assert len(store.jobs()) == 1


def test_enqueue_refuses_a_negative_delay(store: offload.App, env: dict[str, str]) -> None:
    result = offload_cli("enqueue", "add", "--args", "[1, 2]", "--delay", "-1", env=env)
    assert_one_line_error(result, 1, "delay must be a finite number >= 0")
    assert store.jobs() == []


def test_status_shows_a_job_and_its_errors(store: offload.App, env: dict[str, str]) -> None:
    job_id = store.enqueue("fail", kwargs={"message": "kaput"}, max_attempts=1).id
    drained = offload_cli("worker", "--burst", "--executor", "thread", env=env)
    assert drained.returncode == 0, drained.stderr

    shown = offload_cli("status", str(job_id), env=env)
    assert shown.returncode == 0, shown.stderr
    assert f"job {job_id}" in shown.stdout
    assert re.search(r"state\s+dead", shown.stdout)
    assert re.search(r"attempt\s+1/1", shown.stdout)
    assert "ValueError: kaput" in shown.stdout
    assert "Traceback" not in shown.stdout
    with_traceback = offload_cli("status", str(job_id), "--traceback", env=env)
    assert "Traceback (most recent call last)" in with_traceback.stdout
    assert "raise ValueError(message)" in with_traceback.stdout

    data = run_json("status", str(job_id), env=env)
    assert data["id"] == job_id
    assert (data["state"], data["attempt"], data["max_attempts"]) == ("dead", 1, 1)
    assert data["kwargs"] == {"message": "kaput"}
    assert [(e["type"], e["message"]) for e in data["errors"]] == [("ValueError", "kaput")]


def test_status_shows_the_progress_a_task_reported(store: offload.App, env: dict[str, str]) -> None:
    job_id = store.enqueue("report_progress").id
    drained = offload_cli("worker", "--burst", "--executor", "thread", env=env)
    assert drained.returncode == 0, drained.stderr
    shown = offload_cli("status", str(job_id), env=env)
    assert re.search(r"^progress\s+50% halfway\s*$", shown.stdout, re.MULTILINE), shown.stdout
    assert run_json("status", str(job_id), env=env)["progress"] == {
        "fraction": 0.5,
        "message": "halfway",
    }


def test_status_shows_the_keys_and_successor_of_a_superseded_job(
    store: offload.App, env: dict[str, str]
) -> None:
    first = store.enqueue("noop", replace="r:1", idempotency_key="i:1").id
    second = store.enqueue("noop", replace="r:1").id
    shown = offload_cli("status", str(first), env=env)
    assert re.search(r"^state\s+cancelled\s*$", shown.stdout, re.MULTILINE), shown.stdout
    assert re.search(r"^idempotency key\s+i:1\s*$", shown.stdout, re.MULTILINE)
    assert re.search(r"^replace key\s+r:1\s*$", shown.stdout, re.MULTILINE)
    assert re.search(rf"^superseded by\s+{second}\s*$", shown.stdout, re.MULTILINE)
    assert "unique key" not in shown.stdout
    assert run_json("status", str(first), env=env)["superseded_by"] == second


def test_status_of_a_missing_job_is_one_line(store: offload.App, env: dict[str, str]) -> None:
    assert_one_line_error(offload_cli("status", "999999", env=env), 1, "no job with id 999999")


# -- listings -------------------------------------------------------------------------------


def test_jobs_pages_newest_first(store: offload.App, env: dict[str, str]) -> None:
    ids = [store.enqueue("add", [n, n]).id for n in range(6)]  # the last page is exactly full
    other = store.enqueue("noop", queue="other").id

    seen: list[int] = []
    before: list[str] = []
    pages = 0
    while True:
        page = run_json("jobs", "--task", "add", "--limit", "2", *before, env=env)
        seen += [job["id"] for job in page["jobs"]]
        assert all(job["task"] == "add" for job in page["jobs"])
        pages += 1
        if page["next_cursor"] is None:
            break
        assert page["next_cursor"] == seen[-1]
        before = ["--cursor", str(page["next_cursor"])]
    assert seen == sorted(ids, reverse=True)
    assert pages == 3

    table = offload_cli("jobs", "--limit", "2", env=env)
    assert table.returncode == 0, table.stderr
    rows = [line.split() for line in table.stdout.splitlines()[1:-1]]
    assert [int(row[0]) for row in rows] == [other, ids[-1]]
    assert table.stdout.splitlines()[-1] == f"next page: --cursor {ids[-1]}"

    only_other = run_json("jobs", "--queue", "other", "--state", "available", env=env)
    assert [job["id"] for job in only_other["jobs"]] == [other]
    assert only_other["next_cursor"] is None


def test_every_flag_is_also_an_environment_variable(
    store: offload.App, env: dict[str, str]
) -> None:
    ids = [store.enqueue("noop").id for _ in range(3)]
    page = run_json("jobs", env={**env, "OFFLOAD_JOBS_LIMIT": "1"})
    assert [job["id"] for job in page["jobs"]] == [ids[-1]]
    assert page["next_cursor"] == ids[-1]


def test_queues_counts_jobs_per_queue_and_state_and_marks_queues_nobody_serves(
    store: offload.App, env: dict[str, str]
) -> None:
    store.enqueue("add", [1, 2])
    store.enqueue("add", [1, 2], delay=60)
    store.enqueue("noop", queue="mail")
    store.enqueue("noop", queue="mail")
    store.cancel(store.enqueue("noop", queue="mail").id)
    now = store.backend.now()
    for worker_id, queues in (("w-default", ["default", "other"]), ("w-gone", ["mail"])):
        store.backend.workers.register(WorkerInfo(worker_id, "h", 1, queues, 2, now, now))
    # w-gone stopped heartbeating long ago: it serves nothing any more.
    RawDB(store.url).execute(
        "UPDATE offload_workers SET heartbeat_at = heartbeat_at - ? WHERE id = 'w-gone'",
        [3600 if store.backend.name == "sqlite" else timedelta(hours=1)],
    )

    listing = run_json("queues", env=env)
    # How long each queue's oldest due job waited (its own test is in test_queues_flow).
    waits = {name: listing[name].pop("oldest_available") for name in listing}
    assert all(0 <= wait < 60 for wait in waits.values()), waits
    no_flow: dict[str, object] = {"paused": False, "policy": None, "drain_rate": 0.0}
    no_flow |= {"held": 0, "shed": 0, "limits": [], "task_limits": {}}
    assert listing == {
        "default": {
            "counts": {"available": 1, "scheduled": 1},
            "workers": ["w-default"],
            "served": True,
            **no_flow,
        },
        "mail": {
            "counts": {"available": 2, "cancelled": 1},
            "workers": [],
            "served": False,
            **no_flow,
        },
    }
    table = offload_cli("queues", env=env)
    assert table.returncode == 0, table.stderr
    lines = [line.split() for line in table.stdout.splitlines()]
    flow = ["drain/s", "oldest", "held", "paused", "limits"]
    assert lines[0] == ["queue", "scheduled", "available", "cancelled", "total", "workers", *flow]
    assert re.fullmatch(r"\d+s", lines[1].pop(7)) and re.fullmatch(r"\d+s", lines[2].pop(8))
    assert lines[1] == ["default", "1", "1", "0", "2", "1", "-", "0", "-", "-"]
    assert lines[2] == ["mail", "!", "0", "2", "1", "3", "0", "-", "0", "-", "-"]
    assert table.stdout.splitlines()[3] == "! mail: 2 available jobs, no live worker serves it"
    assert len(lines) == 4


# -- changing jobs ----------------------------------------------------------------------------


def test_cancel_then_retry(store: offload.App, env: dict[str, str]) -> None:
    job_id = store.enqueue("add", [1, 2]).id

    cancelled = offload_cli("cancel", str(job_id), env=env)
    assert cancelled.returncode == 0, cancelled.stderr
    assert cancelled.stdout.strip() == f"job {job_id}: cancelled"
    assert store.job(job_id).status() is offload.JobState.CANCELLED
    assert_one_line_error(
        offload_cli("cancel", str(job_id), env=env), 1, f"cannot cancel job {job_id}"
    )

    retried = offload_cli("retry", str(job_id), env=env)
    assert retried.returncode == 0, retried.stderr
    assert retried.stdout.strip() == f"job {job_id}: available"
    assert store.job(job_id).status() is offload.JobState.AVAILABLE
    assert_one_line_error(
        offload_cli("retry", str(job_id), env=env), 1, f"cannot retry job {job_id}: it is available"
    )
    assert_one_line_error(offload_cli("cancel", "999999", env=env), 1, "no job with id 999999")


def test_jobs_filter_by_enqueue_time_and_page_with_the_cursor(
    store: offload.App, env: dict[str, str]
) -> None:
    old = store.enqueue("noop").id
    new = [store.enqueue("noop").id for _ in range(2)]
    RawDB(store.url).execute(
        "UPDATE offload_jobs SET enqueued_at = enqueued_at - ? WHERE id = ?",
        [7200 if store.backend.name == "sqlite" else timedelta(hours=2), old],
    )

    def ids(*args: str) -> list[int]:
        return [job["id"] for job in run_json("jobs", *args, env=env)["jobs"]]

    assert ids("--before", "1h") == [old]
    assert ids("--after", "1h") == new[::-1]
    assert ids("--after", "3h", "--before", "1h", "--cursor", str(old)) == []
    moment = store.job(new[0]).job().enqueued_at.isoformat()
    assert ids("--after", moment) == new[::-1]
    assert ids("--before", moment) == [old]
    assert [job.id for job in store.jobs(before=timedelta(hours=1))] == [old]

    bad = offload_cli("jobs", "--before", "yesterday", env=env)
    assert_one_line_error(bad, 2, "Invalid value for '--before'", "'yesterday' is not a time")
