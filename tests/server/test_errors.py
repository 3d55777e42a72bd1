"""What the HTTP API answers to bad input, back pressure and an unready database: each a
JSON error with a stable type naming the problem, with nothing stored."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pytest

import offload
from offload.core.wire import ERRORS
from tests.server.conftest import Api


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"args": [1]}, "task"),
        ({"task": 42}, "task"),
        ({"task": "echo", "args": {"a": 1}}, "args"),
        ({"task": "echo", "kwargs": [1]}, "kwargs"),
        ({"task": "echo", "priority": "high"}, "priority"),
        ({"task": "echo", "priority": True}, "priority"),
        ({"task": "echo", "delay": "soon"}, "delay"),
        ({"task": "echo", "max_attempts": 2.5}, "max_attempts"),
        ({"task": "echo", "unique": 3}, "unique"),
        ({"task": "echo", "queue": None}, "queue"),
        ({"task": "echo", "run_at": "tomorrow"}, "run_at"),
        ({"task": "echo", "run_at": "2100-01-01T00:00:00"}, "run_at"),
        ({"task": "echo", "colour": "red"}, "colour"),
        ({"task": "echo", "channel": ""}, "channel"),
        ({"task": "echo", "channel": "x" * 256}, "channel"),
        ({"task": "echo", "channel": 42}, "channel"),
    ],
)
def test_wrong_fields_are_422_naming_the_field(
    api: Api, unchanged: None, body: dict[str, Any], field: str
) -> None:
    answer = api.call("POST", "/v1/jobs", json=body)
    assert answer.status_code == 422, answer.text
    error = answer.json()
    assert (error["type"], error["field"]) == ("validation_error", field)
    assert field in error["message"]


@pytest.mark.parametrize(
    ("body", "kind", "named"),
    [
        ({"task": "nope"}, "unknown_task", "nope"),
        ({"task": "add", "args": [1]}, "arguments_mismatch", "'b'"),
        ({"task": "echo", "priority": 10**6}, "validation_error", "priority"),
        ({"task": "echo", "delay": -1}, "validation_error", "delay"),
        ({"task": "echo", "delay": 1, "run_at": "2100-01-01T00:00:00Z"}, "validation_error", "at"),
        ({"task": "echo", "queue": ""}, "validation_error", "queue"),
        ({"task": "echo", "args": [2**70]}, "serialization_error", "64"),
    ],
)
def test_values_the_app_refuses_are_422(
    api: Api, unchanged: None, body: dict[str, Any], kind: str, named: str
) -> None:
    answer = api.call("POST", "/v1/jobs", json=body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["type"] == kind
    assert named in answer.json()["message"]


@pytest.mark.parametrize(
    "content", [b"{nope", b"", b"[1, 2", b'{"task": NaN}', b"\xff\xfe{", b"[" * 100_000]
)
def test_malformed_json_is_400(api: Api, unchanged: None, content: bytes) -> None:
    for route in ("/v1/jobs", "/v1/jobs:batch", "/v1/jobs:cancel"):
        answer = api.call("POST", route, content=content)
        assert answer.status_code == 400
        assert answer.json()["type"] == "malformed_json"
        assert "not JSON" in answer.json()["message"]


def test_a_body_that_is_not_an_object_is_422(api: Api, unchanged: None) -> None:
    answer = api.call("POST", "/v1/jobs", json=["echo"])
    assert answer.status_code == 422
    assert answer.json()["type"] == "validation_error"
    bad_job = api.call("POST", "/v1/jobs:batch", json={"task": "echo", "jobs": [{"args": 1}]})
    assert (bad_job.status_code, bad_job.json()["field"]) == (422, "jobs.0.args")


def test_arguments_over_the_payload_limit_are_413(api: Api, unchanged: None) -> None:
    answer = api.call("POST", "/v1/jobs", json={"task": "echo", "args": ["x" * 1_100_000]})
    assert answer.status_code == 413
    assert answer.json()["type"] == "payload_too_large"
    assert answer.json()["limit"] == 1024 * 1024


def test_a_body_over_the_limit_is_413_and_not_read_further(
    tasks_app: offload.App, unchanged: None
) -> None:
    api = Api(offload.asgi(tasks_app, body_limit=1000))
    big = b'{"task": "echo", "args": ["' + b"x" * 2000 + b'"]}'
    declared = api.call("POST", "/v1/jobs", content=big)
    assert (declared.status_code, declared.json()["type"]) == (413, "body_too_large")
    sent: list[int] = []

    async def endless() -> AsyncIterator[bytes]:  # chunked: no Content-Length
        yield b'{"task": "echo", "args": ["'
        while len(sent) < 10_000:
            sent.append(1)
            yield b"x" * 100

    streamed = api.call("POST", "/v1/jobs", content=endless())
    assert (streamed.status_code, streamed.json()["type"]) == (413, "body_too_large")
    assert len(sent) < 100, "the body was read past its limit"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"cursor": "x"}, "cursor"),
        ({"before": "last tuesday"}, "before"),
        ({"after": "2026-13-01"}, "after"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_filters_are_422_naming_them(api: Api, params: dict[str, str], field: str) -> None:
    answer = api.call("GET", "/v1/jobs", params=params)
    assert answer.status_code == 422
    assert (answer.json()["type"], answer.json()["field"]) == ("validation_error", field)
    assert field in answer.json()["message"]


def test_a_repeated_filter_and_an_unknown_state_are_refused(api: Api) -> None:
    repeated = api.request("GET", "/v1/jobs?queue=a&queue=b")
    assert (repeated.status_code, repeated.json()["field"]) == (422, "queue")
    state = api.call("GET", "/v1/jobs", params={"state": "finished"})
    assert state.status_code == 422
    assert "unknown job state 'finished'" in state.json()["message"]


def test_a_full_queue_is_503_with_retry_after(tasks_app: offload.App, db_url: str) -> None:
    tasks_app.queue("tight", max_depth=1)
    api = Api(offload.asgi(tasks_app))
    first = api.call("POST", "/v1/jobs", json={"task": "echo", "queue": "tight"})
    assert first.status_code == 202
    full = api.call("POST", "/v1/jobs", json={"task": "echo", "queue": "tight"})
    assert full.status_code == 503
    assert int(full.headers["Retry-After"]) >= 1
    error = full.json()
    assert (error["type"], error["queue"], error["depth"], error["limit"]) == (
        "queue_full",
        "tight",
        1,
        1,
    )
    assert error["retry_after"] > 0
    assert len(tasks_app.jobs(queue="tight")) == 1


def test_an_overloaded_queue_is_503_with_retry_after(tasks_app: offload.App) -> None:
    tasks_app.queue("busy", admit_depth=1, admit_priority=5)
    api = Api(offload.asgi(tasks_app))
    api.call("POST", "/v1/jobs", json={"task": "echo", "queue": "busy"})
    refused = api.call("POST", "/v1/jobs", json={"task": "echo", "queue": "busy"})
    assert refused.status_code == 503
    assert refused.json()["type"] == "overloaded"
    assert int(refused.headers["Retry-After"]) >= 1
    urgent = api.call("POST", "/v1/jobs", json={"task": "echo", "queue": "busy", "priority": 5})
    assert urgent.status_code == 202


def test_unknown_routes_and_methods_are_json(api: Api) -> None:
    missing = api.request("GET", "/v1/nothing")
    assert (missing.status_code, missing.json()["type"]) == (404, "not_found")
    not_an_id = api.request("GET", "/v1/jobs/abc")
    assert (not_an_id.status_code, not_an_id.json()["type"]) == (404, "not_found")
    method = api.request("DELETE", "/v1/jobs/1")
    assert (method.status_code, method.json()["type"]) == (405, "method_not_allowed")


def test_health_and_ready(api: Api) -> None:
    assert api.call("GET", "/health").json() == {"status": "ok"}
    assert api.call("GET", "/ready").json() == {"status": "ready"}


def test_ready_is_503_while_the_schema_is_not_current(db_url: str) -> None:
    fresh = offload.App(db_url, auto_migrate=False)  # never migrated
    try:
        with pytest.raises(offload.SchemaMismatch):
            offload.asgi(fresh)  # whether to check tokens is read from the database
        api = Api(offload.asgi(fresh, auth=False))
        assert api.call("GET", "/health").status_code == 200
        answer = api.call("GET", "/ready")
        assert answer.status_code == 503
        assert (answer.json()["type"], answer.json()["found"]) == ("schema_mismatch", 0)
        fresh.migrate()
        assert api.call("GET", "/ready").status_code == 200
    finally:
        fresh.close()


def test_error_types_are_distinct_snake_case_names() -> None:
    types = [type_ for _, type_ in ERRORS.values()]
    assert len(types) == len(set(types)), "two classes share a type"
    assert all(re.fullmatch(r"[a-z]+(_[a-z]+)*", type_) for type_ in types), types


@pytest.mark.parametrize(
    ("method", "route", "given", "field"),
    [
        ("POST", "/v1/jobs", {"json": {"task": "echo", "unique": "a\x00"}}, "unique"),
        ("POST", "/v1/jobs", {"json": {"task": "echo", "replace": "\x00"}}, "replace"),
        ("POST", "/v1/jobs:cancel", {"json": {"queue": "a\x00b"}}, "queue"),
        ("POST", "/v1/jobs:retry", {"json": {"task": "\x00"}}, "task"),
        ("GET", "/v1/jobs", {"params": {"queue": "a\x00b"}}, "queue"),
        ("GET", "/v1/jobs", {"params": {"task": "\x00"}}, "task"),
    ],
)
def test_text_with_nul_is_422_on_both_backends(
    api: Api, unchanged: None, method: str, route: str, given: dict[str, Any], field: str
) -> None:
    """Found by fuzzing: PostgreSQL text cannot hold NUL, so a key with one was a 500
    (backend_error) and a filter with one a 503 (backend_unavailable) there."""
    answer = api.call(method, route, **given)
    assert answer.status_code == 422, answer.text
    assert answer.json()["type"] == "validation_error"
    assert field in answer.json()["message"]
    assert "NUL" in answer.json()["message"]


@pytest.mark.parametrize(
    ("body", "kind", "echoed"),
    [
        ('{"task": "\\ud800"}', "unknown_task", "name"),
        ('{"task": "echo", "\\udfff": 1}', "validation_error", "field"),
    ],
)
def test_a_lone_surrogate_echoed_in_an_error_is_escaped(
    api: Api, unchanged: None, body: str, kind: str, echoed: str
) -> None:
    """Found by fuzzing: an error body echoing a lone surrogate (valid in a JSON string,
    not in UTF-8) failed to encode, a 500."""
    answer = api.call("POST", "/v1/jobs", content=body.encode())
    assert answer.status_code == 422, answer.text
    assert answer.content.isascii()
    error = answer.json()
    assert error["type"] == kind
    assert len(error[echoed]) == 1
    assert 0xD800 <= ord(error[echoed]) <= 0xDFFF


def test_an_integer_with_leading_zeros_is_an_integer(api: Api) -> None:
    """Found by fuzzing: `limit=00000000000000000001` was refused as "not an integer"."""
    answer = api.call("GET", "/v1/jobs", params={"limit": "0" * 30 + "1"})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"jobs": [], "next": None}


@pytest.mark.parametrize(
    ("body", "status", "kind", "named"),
    [
        ({"task": "nope", "jobs": [{}]}, 422, "unknown_task", "nope"),
        ({"task": 7, "jobs": [{}]}, 422, "validation_error", "task"),
        ({"task": "echo", "jobs": {"args": []}}, 422, "validation_error", "jobs"),
        ({"task": "echo", "jobs": []}, 422, "validation_error", "jobs"),
        ({"task": "echo", "jobs": [{"args": {}}]}, 422, "validation_error", "jobs.0.args"),
        ({"task": "echo", "jobs": [{}], "priority": "high"}, 422, "validation_error", "priority"),
        ({"task": "echo", "jobs": [{}], "queue": "a\x00"}, 422, "validation_error", "queue"),
        (
            {"task": "echo", "jobs": [{"args": [1]}, {"args": ["x" * 1_100_000]}]},
            413,
            "payload_too_large",
            "limit",
        ),
    ],
)
def test_bad_batches_name_the_problem_and_store_nothing(
    api: Api, unchanged: None, body: dict[str, Any], status: int, kind: str, named: str
) -> None:
    """Issue 16's bad input on the batch route: all or nothing, so nothing."""
    answer = api.call("POST", "/v1/jobs:batch", json=body)
    assert answer.status_code == status, answer.text[:300]
    assert answer.json()["type"] == kind
    assert named in answer.json()["message"]
