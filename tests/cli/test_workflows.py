"""`offload workflows` (listing, show, cancel) and `offload status` of a workflow's node,
run for real on both backends."""

from __future__ import annotations

import offload
from tests.cli.helpers import assert_one_line_error, offload_cli, run_json


def _diamond(store: offload.App, name: str = "diamond") -> offload.WorkflowHandle:
    """a, then b (fails at once) and c, then d after both (run whatever they did)."""
    flow = (
        offload.Workflow()
        .add("a", store.signature("add", 1, 2))
        .add("b", store.signature("fail", "nope").set(max_attempts=1), after=["a"])
        .add("c", store.signature("add", 3, 4), after=["a"])
        .add("d", store.signature("noop"), after=["b", "c"], on_parent_failure="run")
    )
    return flow.enqueue(name=name)


def _drain(env: dict[str, str]) -> None:
    drained = offload_cli("worker", "--burst", "--executor", "thread", env=env)
    assert drained.returncode == 0, drained.stderr


def test_workflows_lists_newest_first_with_progress_and_pages(
    store: offload.App, env: dict[str, str]
) -> None:
    first = _diamond(store, "first")
    chain = offload.chain(store.signature("add", 1, 1), store.signature("add", 2)).enqueue()
    last = _diamond(store, "last")

    page = run_json("workflows", "--limit", "2", env=env)
    assert [w["id"] for w in page["workflows"]] == [last.id, chain.id]
    assert page["next_cursor"] == chain.id
    newest = page["workflows"][0]
    assert (newest["kind"], newest["name"], newest["state"]) == ("workflow", "last", "running")
    assert (newest["total"], newest["finished"]) == (4, 0)
    assert newest["counts"] == {"waiting": 3, "available": 1}
    rest = run_json("workflows", "--cursor", str(chain.id), env=env)
    assert [w["id"] for w in rest["workflows"]] == [first.id]
    assert rest["next_cursor"] is None

    table = offload_cli("workflows", env=env)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["id", "kind", "name", "created", "state", "progress"]
    assert [int(line.split()[0]) for line in lines[1:]] == [last.id, chain.id, first.id]
    assert "0/4 done (3 waiting, 1 available)" in lines[1]
    assert "chain" in lines[2] and "0/2 done" in lines[2]


def test_show_draws_every_node_with_its_state(store: offload.App, env: dict[str, str]) -> None:
    flow = _diamond(store)
    _drain(env)

    shown = offload_cli("workflows", "show", str(flow.id), env=env)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].startswith(f"workflow {flow.id} 'diamond' (workflow)  failed  4/4 done")
    rows = {line.lstrip("│├└─ ").split()[0]: line for line in lines[1:]}  # by node name
    assert sorted(rows) == ["a", "b", "c", "d"]
    expected = {"a": "succeeded", "b": "dead", "c": "succeeded", "d": "succeeded"}
    for name, state in expected.items():
        job_id = flow.nodes[name].id
        assert f"  {state}  job {job_id}" in rows[name], rows[name]
    assert "also after: c" in rows["d"]  # drawn under b, its first parent
    assert lines.index(rows["d"]) == lines.index(rows["b"]) + 1

    document = run_json("workflows", "show", str(flow.id), env=env)
    assert document["state"] == "failed"
    assert document["counts"] == {"succeeded": 3, "dead": 1}
    nodes = {node["name"]: node for node in document["nodes"]}
    assert {name: node["state"] for name, node in nodes.items()} == expected
    assert nodes["d"]["after"] == ["b", "c"]
    assert nodes["d"]["parents"] == [flow.nodes["b"].id, flow.nodes["c"].id]
    assert nodes["b"]["attempt"] == 1


def test_status_of_a_node_shows_its_workflow(store: offload.App, env: dict[str, str]) -> None:
    flow = _diamond(store)
    job_id = flow.nodes["c"].id
    shown = offload_cli("status", str(job_id), env=env)
    assert shown.returncode == 0, shown.stderr
    assert f"workflow  {flow.id}, node 'c'" in shown.stdout
    assert f"workflow {flow.id} 'diamond' (workflow)  running" in shown.stdout
    [marked] = [line for line in shown.stdout.splitlines() if "◀ this job" in line]
    assert f"c  add  waiting  job {job_id}" in marked
    plain = offload_cli("status", str(store.enqueue("noop").id), env=env)
    assert plain.returncode == 0 and "workflow" not in plain.stdout


def test_cancel_stops_what_is_left(store: offload.App, env: dict[str, str]) -> None:
    flow = _diamond(store)
    done = offload_cli("workflows", "cancel", str(flow.id), env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"workflow {flow.id}: cancelled 4 jobs"
    assert flow.status() is offload.WorkflowState.CANCELLED
    again = run_json("workflows", "cancel", str(flow.id), env=env)
    assert again == {"cancelled": 0, "stop_requested": 0, "ids": []}


def test_unknown_or_malformed_ids_are_one_line_errors(
    store: offload.App, env: dict[str, str]
) -> None:
    for command in ("show", "cancel"):
        missing = offload_cli("workflows", command, "999999", env=env)
        assert_one_line_error(missing, 1, "no workflow with id 999999")
        assert_one_line_error(offload_cli("workflows", command, "abc", env=env), 2, "abc")
    assert_one_line_error(offload_cli("workflows", "--limit", "0", env=env), 2, "--limit")
    empty = offload_cli("workflows", env=env)
    assert (empty.returncode, empty.stdout.strip()) == (0, "no workflows")
