"""The workflow routes of the HTTP API on both backends: a DAG stored from JSON, read with
its nodes' states, listed in pages and cancelled; jobs enqueued with `depends_on`; and bad
input refused with nothing stored."""

from __future__ import annotations

from typing import Any

import pytest

import offload
from tests.server.conftest import Api

#: a, then b and c, then d once both are over (whatever they did).
DIAMOND: list[dict[str, Any]] = [
    {"name": "a", "task": "add", "args": [1, 2]},
    {"name": "b", "task": "echo", "after": ["a"]},
    {"name": "c", "task": "echo", "args": ["c"], "after": ["a"], "queue": "q", "priority": 3},
    {"name": "d", "task": "echo", "after": ["b", "c"], "on_parent_failure": "run"},
]


def _store(api: Api, name: str = "diamond") -> dict[str, Any]:
    answer = api.call("POST", "/v1/workflows", json={"name": name, "nodes": DIAMOND})
    assert answer.status_code == 202, answer.text
    stored: dict[str, Any] = answer.json()
    return stored


def test_a_dag_is_stored_and_read_back_with_each_node_s_state(
    api: Api, tasks_app: offload.App
) -> None:
    answer = api.call("POST", "/v1/workflows", json={"name": "diamond", "nodes": DIAMOND})
    assert answer.status_code == 202, answer.text
    stored = answer.json()
    assert sorted(stored["nodes"]) == ["a", "b", "c", "d"]
    assert answer.headers["Location"].endswith(f"/v1/workflows/{stored['id']}")
    ids = stored["nodes"]
    job = tasks_app.job(ids["c"]).job()
    assert (job.queue, job.priority, job.args, job.workflow_id) == ("q", 3, ["c"], stored["id"])

    read = api.call("GET", "/v1/workflows/{workflow_id}", workflow_id=stored["id"]).json()
    assert (read["id"], read["kind"], read["name"]) == (stored["id"], "workflow", "diamond")
    assert (read["state"], read["total"], read["finished"]) == ("running", 4, 0)
    assert read["counts"] == {"waiting": 3, "available": 1}
    nodes = {node["name"]: node for node in read["nodes"]}
    assert {name: node["state"] for name, node in nodes.items()} == {
        "a": "available",
        "b": "waiting",
        "c": "waiting",
        "d": "waiting",
    }
    assert nodes["d"]["parents"] == [ids["b"], ids["c"]]
    assert nodes["d"]["after"] == ["b", "c"]
    assert {node["job_id"] for node in read["nodes"]} == set(ids.values())
    via_job = api.call("GET", "/v1/jobs/{job_id}", job_id=ids["d"]).json()
    assert (via_job["workflow_id"], via_job["node"], via_job["parents"]) == (stored["id"], "d", 2)


def test_a_run_at_of_a_node_is_an_rfc3339_time(api: Api, tasks_app: offload.App) -> None:
    node = {"name": "later", "task": "echo", "run_at": "2100-01-02T03:04:05Z"}
    stored = api.call("POST", "/v1/workflows", json={"nodes": [node]}).json()
    assert tasks_app.job(stored["nodes"]["later"]).job().state is offload.JobState.SCHEDULED


def test_workflows_are_listed_newest_first_a_page_at_a_time(api: Api) -> None:
    made = [_store(api, f"w{n}")["id"] for n in range(3)]
    first = api.call("GET", "/v1/workflows", params={"limit": 2}).json()
    assert [w["id"] for w in first["workflows"]] == made[:0:-1]
    assert first["next"] == made[1]
    assert first["workflows"][0]["name"] == "w2"
    assert first["workflows"][0]["counts"] == {"waiting": 3, "available": 1}
    rest = api.call("GET", "/v1/workflows", params={"cursor": first["next"]}).json()
    assert ([w["id"] for w in rest["workflows"]], rest["next"]) == ([made[0]], None)
    for bad in ({"limit": 0}, {"cursor": "x"}, {"state": "running"}):
        refused = api.call("GET", "/v1/workflows", params=bad)
        assert refused.status_code == 422
        assert refused.json()["field"] == next(iter(bad))


def test_cancel_stops_every_unfinished_node(api: Api) -> None:
    stored = _store(api)
    answer = api.call("POST", "/v1/workflows/{workflow_id}/cancel", workflow_id=stored["id"])
    assert answer.status_code == 200
    changed = answer.json()["changed"]
    assert sorted(c["id"] for c in changed) == sorted(stored["nodes"].values())
    assert {c["state"] for c in changed} == {"cancelled"}
    read = api.call("GET", "/v1/workflows/{workflow_id}", workflow_id=stored["id"]).json()
    assert (read["state"], read["finished"]) == ("cancelled", 4)
    again = api.call("POST", "/v1/workflows/{workflow_id}/cancel", workflow_id=stored["id"])
    assert again.json() == {"changed": []}


@pytest.mark.parametrize(
    ("method", "template"),
    [("GET", "/v1/workflows/{workflow_id}"), ("POST", "/v1/workflows/{workflow_id}/cancel")],
)
def test_an_unknown_workflow_is_404(api: Api, method: str, template: str) -> None:
    for workflow_id in (999_999, 2**70):
        answer = api.call(method, template, workflow_id=workflow_id)
        assert answer.status_code == 404
        error = answer.json()
        assert (error["type"], error["workflow_id"]) == ("workflow_not_found", workflow_id)


def _nodes(*changes: dict[str, Any]) -> list[dict[str, Any]]:
    """Two good nodes, then `changes` as more nodes."""
    good: list[dict[str, Any]] = [
        {"name": "a", "task": "add", "args": [1, 2]},
        {"name": "b", "task": "echo"},
    ]
    return [*good, *changes]


@pytest.mark.parametrize(
    ("body", "kind", "named"),
    [
        # refused by the document's schema, naming the field
        ({"nodes": []}, "validation_error", "nodes"),
        ({"nodes": _nodes({"name": "c"})}, "validation_error", "nodes.2.task"),
        ({"nodes": _nodes({"name": "c", "task": "echo", "args": {}})}, "validation_error",
         "nodes.2.args"),
        ({"nodes": _nodes({"name": "c", "task": "echo", "args": "[1]"})}, "validation_error",
         "nodes.2.args"),
        ({"nodes": _nodes({"name": "c", "task": "echo", "after": "a"})}, "validation_error",
         "nodes.2.after"),
        ({"nodes": _nodes({"name": "c", "task": "echo", "quue": "x"})}, "validation_error",
         "nodes.2.quue"),
        ({"nodes": _nodes({"name": "c", "task": "echo", "on_parent_failure": "skip"})},
         "validation_error", "nodes.2.on_parent_failure"),
        ({"nodes": _nodes({"name": "c", "task": "echo", "run_at": "2100-01-01T00:00:00"})},
         "validation_error", "nodes.2.run_at"),
        ({"nodes": _nodes({"name": "", "task": "echo"})}, "validation_error", "nodes.2.name"),
        ({"nodes": _nodes(), "colour": "red"}, "validation_error", "colour"),
        # refused by the App, naming the node
        ({"nodes": _nodes({"name": "c", "task": "nope"})}, "unknown_task", "nope"),
        ({"nodes": _nodes({"name": "c", "task": "echo", "after": ["z"]})}, "invalid_workflow",
         "'z'"),
        ({"nodes": _nodes({"name": "a", "task": "echo"})}, "invalid_workflow", "'a'"),
        ({"nodes": _nodes({"name": "c", "task": "add", "args": [1]})}, "invalid_workflow",
         "'c'"),
        ({"nodes": _nodes({"name": "c", "task": "echo", "after": ["d"]},
                          {"name": "d", "task": "echo", "after": ["c"]})},
         "invalid_workflow", "cycle"),
        ({"nodes": _nodes({"name": "c", "task": "echo", "priority": 10**6})},
         "validation_error", "priority"),
        ({"nodes": _nodes({"name": "c", "task": "echo", "args": [2**70]})},
         "invalid_workflow", "64"),
        ({"nodes": _nodes({"name": "c", "task": "echo", "depends_on": [999_999]})},
         "unknown_dependency", "999999"),
    ],
)  # fmt: skip
def test_a_bad_workflow_is_422_and_stores_nothing(
    api: Api, tasks_app: offload.App, unchanged: None, body: dict[str, Any], kind: str, named: str
) -> None:
    before = len(tasks_app.jobs(limit=1000))
    answer = api.call("POST", "/v1/workflows", json=body)
    assert answer.status_code == 422, answer.text
    error = answer.json()
    assert error["type"] == kind, error
    assert named in (error.get("field") or error["message"]), error
    assert len(tasks_app.jobs(limit=1000)) == before
    assert tasks_app.workflows() == []


def test_a_job_can_wait_for_jobs(api: Api, tasks_app: offload.App) -> None:
    parent = tasks_app.enqueue("add", [1, 2]).id
    body = {"task": "echo", "depends_on": [parent], "on_parent_failure": "run"}
    answer = api.call("POST", "/v1/jobs", json=body)
    assert answer.status_code == 202, answer.text
    job = answer.json()
    assert (job["state"], job["parents"], job["workflow_id"]) == ("waiting", 1, None)
    batch = {"task": "echo", "depends_on": [parent, job["id"]], "jobs": [{"args": [1]}, {}]}
    many = api.call("POST", "/v1/jobs:batch", json=batch)
    assert many.status_code == 202, many.text
    for stored in many.json()["jobs"]:
        assert tasks_app.job(stored["id"]).job().parents == 2


@pytest.mark.parametrize(
    ("body", "kind", "named"),
    [
        ({"task": "echo", "depends_on": "1"}, "validation_error", "depends_on"),
        ({"task": "echo", "depends_on": [0]}, "validation_error", "depends_on.0"),
        ({"task": "echo", "depends_on": [2**64]}, "validation_error", "depends_on.0"),
        ({"task": "echo", "on_parent_failure": "ignore"}, "validation_error",
         "on_parent_failure"),
        ({"task": "echo", "depends_on": [999_999]}, "unknown_dependency", "999999"),
    ],
)  # fmt: skip
def test_bad_dependencies_are_422_and_store_nothing(
    api: Api, tasks_app: offload.App, unchanged: None, body: dict[str, Any], kind: str, named: str
) -> None:
    before = len(tasks_app.jobs(limit=1000))
    answer = api.call("POST", "/v1/jobs", json=body)
    assert answer.status_code == 422, answer.text
    error = answer.json()
    assert error["type"] == kind, error
    assert named in (error.get("field") or error["message"]), error
    assert len(tasks_app.jobs(limit=1000)) == before
