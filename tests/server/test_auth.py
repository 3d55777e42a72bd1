"""Bearer tokens in the HTTP API: which servers check them, 401 without a live token, 403
without the route's scope, and the open probe and document routes."""

from __future__ import annotations

from typing import Any

import pytest

import offload
from offload.core.tokens import Scope
from offload.server.openapi import SCOPES, document
from tests.server.conftest import Api

#: Each route that needs a scope, with a request it answers 200 or 202 to (`{job_id}`: a
#: stored job, `{workflow_id}`: a stored workflow), in an order where each change is
#: allowed after the ones before.
CALLS: list[tuple[str, str, dict[str, Any]]] = [
    ("POST", "/v1/jobs", {"json": {"task": "add", "args": [1, 2]}}),
    ("POST", "/v1/jobs:batch", {"json": {"task": "add", "jobs": [{"args": [3, 4]}]}}),
    ("GET", "/v1/jobs", {}),
    ("GET", "/v1/jobs/{job_id}", {}),
    ("GET", "/v1/queues", {}),
    ("GET", "/v1/workers", {}),
    ("GET", "/v1/schedules", {}),
    ("POST", "/v1/jobs/{job_id}/cancel", {}),
    ("POST", "/v1/jobs/{job_id}/retry", {}),
    ("POST", "/v1/jobs:cancel", {"json": {"ids": ["{job_id}"]}}),
    ("POST", "/v1/jobs:retry", {"json": {"ids": ["{job_id}"]}}),
    ("POST", "/v1/workflows", {"json": {"nodes": [{"name": "n", "task": "add", "args": [7, 8]}]}}),
    ("GET", "/v1/workflows", {}),
    ("GET", "/v1/workflows/{workflow_id}", {}),
    ("POST", "/v1/workflows/{workflow_id}/cancel", {}),
    ("GET", "/metrics", {}),
]
#: The event streams (read scope): tested here for 401 and 403, which answer at once; their
#: streams, which do not end, over real HTTP in test_events.py.
STREAMS = [("GET", "/v1/jobs/{job_id}/events"), ("GET", "/v1/events")]
OPEN = [("GET", "/health"), ("GET", "/ready"), ("GET", "/openapi.json")]
#: Authorization headers that carry no live token.
BAD_HEADERS = [
    None,
    "",
    "Bearer",
    "Bearer ",
    "Basic dXNlcjpwYXNz",
    "Bearer not-a-token",
    "Bearer offload_0123456789ab_" + "A" * 43,  # well formed, never issued
    "Token {token}",
    "Bearer {token} {token}",
    "Bearer {token}x",
]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def send(
    api: Api,
    method: str,
    template: str,
    kwargs: dict[str, Any],
    job_id: int,
    workflow_id: int,
    **extra: Any,
) -> Any:
    """One of `CALLS` through the checking client, `{job_id}` and `{workflow_id}` filled in."""
    given = dict(kwargs)
    if "ids" in given.get("json", {}):
        given["json"] = {"ids": [job_id]}
    return api.call(method, template, job_id=job_id, workflow_id=workflow_id, **given, **extra)


@pytest.fixture
def tokens(tasks_app: offload.App) -> dict[str, str]:
    """A token of each single scope, by scope name."""
    return {s.value: tasks_app.create_token(f"only-{s.value}", [s]) for s in Scope}


@pytest.fixture
def guarded(tasks_app: offload.App, tokens: dict[str, str]) -> Api:
    """A client of the API built once tokens exist, so it checks them."""
    return Api(offload.asgi(tasks_app))


@pytest.fixture
def job_id(tasks_app: offload.App) -> int:
    return tasks_app.enqueue("add", [5, 6]).id


@pytest.fixture
def workflow_id(tasks_app: offload.App) -> int:
    return tasks_app.enqueue_workflow([{"name": "w", "task": "echo"}]).id


def test_the_scope_table_covers_every_route_and_the_document_states_it() -> None:
    doc = document()
    assert set(SCOPES) == {(path, m) for path, item in doc["paths"].items() for m in item}
    assert {(m, path) for (path, m), scope in SCOPES.items() if scope is None} == {
        (m.lower(), path) for m, path in OPEN
    }
    called = [(m, path) for m, path, _ in CALLS] + STREAMS
    assert sorted((m.lower(), path) for m, path in called) == sorted(
        (m, path) for (path, m), scope in SCOPES.items() if scope is not None
    )
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    for (path, method), scope in SCOPES.items():
        operation = doc["paths"][path][method]
        if scope is None:
            assert operation["security"] == []
            assert "401" not in operation["responses"]
        else:
            assert operation["security"] == [{"bearer": [scope.value]}]
            assert {"401", "403"} <= set(operation["responses"])


@pytest.mark.parametrize(("method", "template", "kwargs"), CALLS)
def test_no_live_token_is_401_and_stores_nothing(
    guarded: Api,
    tokens: dict[str, str],
    job_id: int,
    workflow_id: int,
    unchanged: None,
    method: str,
    template: str,
    kwargs: dict[str, Any],
) -> None:
    """Each of `BAD_HEADERS` in turn, on one database (one database per header made this
    matrix a slow part of the suite: the refusals change nothing, so they can share it)."""
    for header in BAD_HEADERS:
        token = tokens["admin"]
        headers = {} if header is None else {"Authorization": header.format(token=token)}
        answer = send(guarded, method, template, kwargs, job_id, workflow_id, headers=headers)
        assert answer.status_code == 401, (header, answer.text)
        assert answer.headers["WWW-Authenticate"] == "Bearer", header
        assert answer.json()["type"] == "unauthorized", header
        assert tokens["admin"] not in answer.text, header


@pytest.mark.parametrize("scope", list(Scope))
def test_each_scope_opens_its_routes_and_is_403_elsewhere(
    tasks_app: offload.App,
    guarded: Api,
    tokens: dict[str, str],
    job_id: int,
    workflow_id: int,
    scope: Scope,
) -> None:
    info = tasks_app.authenticate(tokens[scope])
    assert info is not None
    jobs_before = len(tasks_app.jobs())
    for method, template, kwargs in CALLS:
        needed = SCOPES[(template, method.lower())]
        assert needed is not None
        token = bearer(tokens[scope])
        answer = send(guarded, method, template, kwargs, job_id, workflow_id, headers=token)
        if info.allows(needed):
            assert answer.status_code in (200, 202), (method, template, answer.text)
        else:
            assert answer.status_code == 403, (method, template, answer.text)
            error = answer.json()
            assert error["type"] == "forbidden"
            assert f"needs the {needed} scope" in error["message"]
            assert f"only-{scope}" in error["message"]
    stored = len(tasks_app.jobs()) - jobs_before
    assert stored == (3 if info.allows(Scope.ENQUEUE) else 0)


def test_a_token_lacking_the_scope_stores_and_changes_nothing(
    guarded: Api, tokens: dict[str, str], job_id: int, workflow_id: int, unchanged: None
) -> None:
    for method, template, kwargs in CALLS:
        needed = SCOPES[(template, method.lower())]
        lacking = next(s for s in (Scope.READ, Scope.ENQUEUE) if s is not needed)
        if needed is not None and needed is not lacking:
            token = bearer(tokens[lacking])
            answer = send(guarded, method, template, kwargs, job_id, workflow_id, headers=token)
            assert answer.status_code == 403, (method, template, answer.text)


@pytest.mark.parametrize(("method", "template"), STREAMS)
def test_event_streams_need_a_token_with_the_read_scope(
    guarded: Api, tokens: dict[str, str], job_id: int, method: str, template: str
) -> None:
    assert guarded.call(method, template, job_id=job_id).status_code == 401
    answer = guarded.call(method, template, job_id=job_id, headers=bearer(tokens["enqueue"]))
    assert (answer.status_code, answer.json()["type"]) == (403, "forbidden")
    assert "needs the read scope" in answer.json()["message"]


def test_open_routes_need_no_token(guarded: Api) -> None:
    for method, path in OPEN:
        assert guarded.call(method, path).status_code == 200, path
    assert guarded.call("GET", "/v1/jobs").status_code == 401  # while the rest do


def test_the_scheme_name_is_case_insensitive(guarded: Api, tokens: dict[str, str]) -> None:
    headers = {"Authorization": f"bEaReR {tokens['read']}"}
    assert guarded.call("GET", "/v1/queues", headers=headers).status_code == 200


def test_a_revoked_token_is_refused_from_the_next_request(
    tasks_app: offload.App, guarded: Api, tokens: dict[str, str]
) -> None:
    assert guarded.call("GET", "/v1/queues", headers=bearer(tokens["read"])).status_code == 200
    tasks_app.revoke_token("only-read")
    answer = guarded.call("GET", "/v1/queues", headers=bearer(tokens["read"]))
    assert answer.status_code == 401
    assert "revoked" in answer.json()["message"]
    assert guarded.call("GET", "/v1/queues", headers=bearer(tokens["admin"])).status_code == 200


def test_revoking_every_token_never_opens_a_checking_server(
    tasks_app: offload.App, guarded: Api, tokens: dict[str, str]
) -> None:
    for scope in Scope:
        tasks_app.revoke_token(f"only-{scope}")
    assert not tasks_app.tokens_configured()
    assert guarded.call("GET", "/v1/jobs").status_code == 401
    assert guarded.call("GET", "/v1/jobs", headers=bearer(tokens["admin"])).status_code == 401
    answer = guarded.call("POST", "/v1/jobs", json={"task": "add", "args": [1, 2]})
    assert answer.status_code == 401
    assert tasks_app.jobs() == []
    assert guarded.call("GET", "/health").status_code == 200


def test_auth_false_serves_openly_though_tokens_exist(
    tasks_app: offload.App, tokens: dict[str, str]
) -> None:
    api = Api(offload.asgi(tasks_app, auth=False))
    assert api.call("GET", "/v1/jobs").status_code == 200
    assert api.call("POST", "/v1/jobs", json={"task": "add", "args": [1, 2]}).status_code == 202


def test_without_tokens_the_default_is_open_and_auth_true_refuses(
    tasks_app: offload.App,
) -> None:
    assert not tasks_app.tokens_configured()
    assert Api(offload.asgi(tasks_app)).call("GET", "/v1/jobs").status_code == 200
    forced = Api(offload.asgi(tasks_app, auth=True))
    assert forced.call("GET", "/v1/jobs").status_code == 401
    token = tasks_app.create_token("late", ["read"])
    assert forced.call("GET", "/v1/jobs", headers=bearer(token)).status_code == 200


@pytest.mark.parametrize("auth", ["yes", 1, 0])
def test_auth_must_be_a_bool_or_none(tasks_app: offload.App, auth: Any) -> None:
    with pytest.raises(offload.ConfigurationError, match="auth must be True, False or None"):
        offload.asgi(tasks_app, auth=auth)


def test_a_server_checking_no_token_documents_no_security(tasks_app: offload.App) -> None:
    """Found by the fuzzer: an open server's document promised 401 and 403 and a bearer
    requirement on every route, which it never checks."""
    served = Api(offload.asgi(tasks_app, auth=False)).doc
    assert served == document(auth=False)
    for item in served["paths"].values():
        for operation in item.values():
            assert operation["security"] == []
            assert not {"401", "403"} & set(operation["responses"])
    checking = Api(offload.asgi(tasks_app, auth=True)).doc
    assert checking == document(auth=True)
    assert checking["paths"]["/v1/jobs"]["post"]["security"] == [{"bearer": ["enqueue"]}]
