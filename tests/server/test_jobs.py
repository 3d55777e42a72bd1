"""The job routes of the HTTP API on both backends: enqueue (one and a batch), read, list
with filters and pages, cancel and retry (one and by filter)."""

from __future__ import annotations

from datetime import UTC, datetime

import offload
from tests.server.conftest import Api


def test_enqueue_answers_202_with_the_job_and_its_location(
    api: Api, tasks_app: offload.App
) -> None:
    body = {
        "task": "add",
        "args": [1],
        "kwargs": {"b": 2},
        "queue": "maths",
        "priority": 5,
        "max_attempts": 7,
        "delay": 60,
    }
    answer = api.call("POST", "/v1/jobs", json=body)
    assert answer.status_code == 202
    job = answer.json()
    assert (job["task"], job["args"], job["kwargs"]) == ("add", [1], {"b": 2})
    assert (job["queue"], job["priority"], job["max_attempts"]) == ("maths", 5, 7)
    assert job["state"] == "scheduled"
    assert answer.headers["Location"].endswith(f"/v1/jobs/{job['id']}")
    stored = tasks_app.job(job["id"]).job()
    assert (stored.queue, stored.priority, stored.args) == ("maths", 5, [1])
    again = api.request("GET", answer.headers["Location"])
    assert again.status_code == 200 and again.json()["id"] == job["id"]


def test_a_channel_is_stored_and_its_events_carry_it(api: Api, tasks_app: offload.App) -> None:
    answer = api.call("POST", "/v1/jobs", json={"task": "echo", "channel": "user:42"})
    assert answer.status_code == 202
    job = answer.json()
    assert job["channel"] == "user:42"
    assert tasks_app.job(job["id"]).job().channel == "user:42"
    (event,) = tasks_app.events(channel="user:42")
    assert (event.kind, event.job_id) == ("enqueued", job["id"])
    batch = {"task": "echo", "channel": "user:7", "jobs": [{"args": [1]}, {"args": [2]}]}
    assert api.call("POST", "/v1/jobs:batch", json=batch).status_code == 202
    assert len(tasks_app.events(channel="user:7")) == 2


def test_run_at_is_an_rfc3339_time_with_an_offset(api: Api) -> None:
    answer = api.call("POST", "/v1/jobs", json={"task": "echo", "run_at": "2100-01-02T03:04:05Z"})
    assert answer.status_code == 202
    assert datetime.fromisoformat(answer.json()["run_at"]) == datetime(
        2100, 1, 2, 3, 4, 5, tzinfo=UTC
    )


def test_an_idempotency_key_answers_200_with_the_same_job(api: Api) -> None:
    key = {"Idempotency-Key": "order-42"}
    first = api.call("POST", "/v1/jobs", json={"task": "add", "args": [1, 2]}, headers=key)
    second = api.call("POST", "/v1/jobs", json={"task": "add", "args": [1, 2]}, headers=key)
    assert (first.status_code, second.status_code) == (202, 200)
    assert first.json()["id"] == second.json()["id"]
    assert second.json()["idempotency_key"] == "order-42"
    assert second.headers["Location"] == first.headers["Location"]
    other = api.call("POST", "/v1/jobs", json={"task": "add", "args": [3, 4]}, headers=key)
    assert other.status_code == 409
    assert other.json()["type"] == "idempotency_conflict"
    assert other.json()["job_id"] == first.json()["id"]


def test_a_unique_job_answers_200_with_the_holder(api: Api) -> None:
    body = {"task": "add", "args": [1, 2], "unique": True}
    first = api.call("POST", "/v1/jobs", json=body)
    second = api.call("POST", "/v1/jobs", json=body)
    assert (first.status_code, second.status_code) == (202, 200)
    assert second.json()["id"] == first.json()["id"]
    keyed = api.call("POST", "/v1/jobs", json={"task": "add", "args": [5, 6], "unique": "k"})
    assert keyed.json()["unique_key"] is not None


def test_replace_cancels_the_queued_job_with_the_key(api: Api, tasks_app: offload.App) -> None:
    old = api.call("POST", "/v1/jobs", json={"task": "echo", "replace": "report"}).json()
    new = api.call("POST", "/v1/jobs", json={"task": "echo", "replace": "report"}).json()
    replaced = tasks_app.job(old["id"]).job()
    assert replaced.state is offload.JobState.CANCELLED
    assert replaced.superseded_by == new["id"]


def test_a_batch_stores_every_job(api: Api, tasks_app: offload.App) -> None:
    body = {
        "task": "add",
        "queue": "bulk",
        "jobs": [{"args": [1, 2]}, {"kwargs": {"a": 3, "b": 4}}, {"args": [5], "kwargs": {"b": 6}}],
    }
    answer = api.call("POST", "/v1/jobs:batch", json=body)
    assert answer.status_code == 202
    jobs = answer.json()["jobs"]
    assert [j["duplicate"] for j in jobs] == [False, False, False]
    stored = [tasks_app.job(j["id"]).job() for j in jobs]
    assert [(j.args, j.kwargs, j.queue) for j in stored] == [
        ([1, 2], {}, "bulk"),
        ([], {"a": 3, "b": 4}, "bulk"),
        ([5], {"b": 6}, "bulk"),
    ]


def test_a_batch_with_one_bad_call_stores_nothing(api: Api, unchanged: None) -> None:
    body = {"task": "add", "jobs": [{"args": [1, 2]}, {"args": [1]}]}
    answer = api.call("POST", "/v1/jobs:batch", json=body)
    assert answer.status_code == 422
    assert answer.json()["type"] == "arguments_mismatch"
    assert answer.json()["index"] == 1


def test_get_an_unknown_job_is_404(api: Api) -> None:
    for job_id in (999, 2**70):
        answer = api.call("GET", "/v1/jobs/{job_id}", job_id=job_id)
        assert answer.status_code == 404
        assert answer.json()["type"] == "job_not_found"
        assert answer.json()["job_id"] == job_id


def test_jobs_are_listed_newest_first_a_page_at_a_time(api: Api) -> None:
    ids = [
        api.call("POST", "/v1/jobs", json={"task": "echo", "args": [i]}).json()["id"]
        for i in range(5)
    ]
    seen: list[int] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": "2"} if cursor is None else {"limit": "2", "cursor": str(cursor)}
        page = api.call("GET", "/v1/jobs", params=params).json()
        seen += [job["id"] for job in page["jobs"]]
        pages += 1
        cursor = page["next"]
        if cursor is None:
            break
    assert seen == sorted(ids, reverse=True)
    assert pages == 3


def test_jobs_filters(api: Api) -> None:
    api.call("POST", "/v1/jobs", json={"task": "echo", "queue": "a"})
    b = api.call("POST", "/v1/jobs", json={"task": "add", "args": [1, 2], "queue": "b"}).json()
    api.call("POST", "/v1/jobs/{job_id}/cancel", job_id=b["id"])

    def ids(**params: str) -> list[int]:
        return [j["id"] for j in api.call("GET", "/v1/jobs", params=params).json()["jobs"]]

    assert ids(queue="b") == [b["id"]]
    assert ids(task="add") == [b["id"]]
    assert ids(state="cancelled") == [b["id"]]
    assert ids(state="cancelled", queue="a") == []
    assert len(ids(after="1h")) == 2
    assert ids(before="2000-01-01T00:00:00Z") == []


def test_cancel_and_retry_one_job(api: Api) -> None:
    job = api.call("POST", "/v1/jobs", json={"task": "echo"}).json()
    cancelled = api.call("POST", "/v1/jobs/{job_id}/cancel", job_id=job["id"])
    assert (cancelled.status_code, cancelled.json()["state"]) == (200, "cancelled")
    again = api.call("POST", "/v1/jobs/{job_id}/cancel", job_id=job["id"])
    assert again.status_code == 409
    assert again.json() | {"message": ""} == {
        "type": "invalid_transition",
        "message": "",
        "job_id": job["id"],
        "state": "cancelled",
        "operation": "cancel",
    }
    retried = api.call("POST", "/v1/jobs/{job_id}/retry", job_id=job["id"])
    assert (retried.status_code, retried.json()["state"]) == (200, "available")
    refused = api.call("POST", "/v1/jobs/{job_id}/retry", job_id=job["id"])
    assert (refused.status_code, refused.json()["type"]) == (409, "invalid_transition")
    for operation in ("cancel", "retry"):
        missing = api.call("POST", f"/v1/jobs/{{job_id}}/{operation}", job_id=10**6)
        assert (missing.status_code, missing.json()["type"]) == (404, "job_not_found")


def test_cancel_and_retry_by_filter(api: Api) -> None:
    in_a = [
        api.call("POST", "/v1/jobs", json={"task": "echo", "queue": "a"}).json()["id"]
        for _ in range(3)
    ]
    in_b = api.call("POST", "/v1/jobs", json={"task": "echo", "queue": "b"}).json()["id"]
    cancelled = api.call("POST", "/v1/jobs:cancel", json={"queue": "a"}).json()["changed"]
    assert sorted(c["id"] for c in cancelled) == in_a
    assert {c["state"] for c in cancelled} == {"cancelled"}
    by_ids = api.call("POST", "/v1/jobs:retry", json={"ids": [in_a[0], in_b]}).json()["changed"]
    assert [c["id"] for c in by_ids] == [in_a[0]]  # in_b is not retryable: left alone
    everything = api.call("POST", "/v1/jobs:cancel", json={"all_jobs": True}).json()["changed"]
    assert sorted(c["id"] for c in everything) == sorted([in_a[0], in_b])


def test_bulk_without_a_selection_is_refused(api: Api, unchanged: None) -> None:
    for route in ("/v1/jobs:cancel", "/v1/jobs:retry"):
        answer = api.call("POST", route, json={})
        assert answer.status_code == 422
        assert "needs job ids or at least one filter" in answer.json()["message"]
    wrong = api.call("POST", "/v1/jobs:retry", json={"state": "running"})
    assert (wrong.status_code, wrong.json()["type"]) == (422, "validation_error")
    bad_time = api.call("POST", "/v1/jobs:cancel", json={"before": "yesterday"})
    assert (bad_time.status_code, bad_time.json()["field"]) == (422, "before")


def test_a_batch_refuses_an_idempotency_key(api: Api, unchanged: None) -> None:
    body = {"task": "echo", "jobs": [{"args": [1]}]}
    answer = api.call("POST", "/v1/jobs:batch", json=body, headers={"Idempotency-Key": "k"})
    assert answer.status_code == 422
    assert answer.json()["field"] == "Idempotency-Key"


def test_error_type_and_args_contains_filter_listings_and_bulk(
    api: Api, tasks_app: offload.App
) -> None:
    user5 = api.call("POST", "/v1/jobs", json={"task": "echo", "kwargs": {"user": 5}}).json()
    api.call("POST", "/v1/jobs", json={"task": "echo", "kwargs": {"user": "5"}})
    arg = api.call("POST", "/v1/jobs", json={"task": "add", "args": [{"user": 5}, 2]}).json()

    def ids(**params: str) -> list[int]:
        answer = api.call("GET", "/v1/jobs", params=params)
        assert answer.status_code == 200, answer.json()
        return [j["id"] for j in answer.json()["jobs"]]

    assert ids(args_contains='{"user": 5}') == [arg["id"], user5["id"]]
    assert ids(args_contains='{"user": 5}', task="echo") == [user5["id"]]
    assert ids(error_type="ValueError") == []
    bad = api.call("GET", "/v1/jobs", params={"args_contains": "{user: 5"})
    assert (bad.status_code, bad.json()["field"]) == (422, "args_contains")
    body = {"args_contains": {"user": 5}}
    cancelled = api.call("POST", "/v1/jobs:cancel", json=body).json()["changed"]
    assert sorted(c["id"] for c in cancelled) == sorted([user5["id"], arg["id"]])
    retried = api.call("POST", "/v1/jobs:retry", json=body | {"error_type": "KeyError"})
    assert retried.json()["changed"] == []  # no error at all: none of them matches
    typed = api.call("POST", "/v1/jobs:retry", json={"error_type": 5})
    assert typed.status_code == 422
    assert tasks_app.count_jobs(state="cancelled") == 2


def test_a_null_argument_pattern_is_refused_and_changes_nothing(
    api: Api, tasks_app: offload.App
) -> None:
    """JSON null as `args_contains` would mean "no filter" to the App: refused, so that a
    bulk cancel by state and a null pattern never takes every job of that state."""
    for n in range(3):
        tasks_app.enqueue("add", [n, n])
    listed = api.call("GET", "/v1/jobs", params={"args_contains": "null"})
    assert listed.status_code == 422
    assert "args_contains cannot be null" in listed.text
    body = {"state": "available", "args_contains": None}
    cancelled = api.call("POST", "/v1/jobs:cancel", json=body)
    assert cancelled.status_code == 422
    assert tasks_app.count_jobs(state="available") == 3
