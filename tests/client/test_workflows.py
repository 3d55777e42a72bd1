"""The workflow calls of `offload.client.Client` over real HTTP and of `AsyncClient`
through httpx's ASGI transport, on both backends: store a DAG, read it, list, cancel, and
jobs that wait for jobs."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

import offload
from offload.client import AsyncClient, Client, WorkflowEnqueued
from offload.core.records import JobChange
from tests.client.conftest import Serve


def test_a_workflow_is_stored_read_listed_and_cancelled(
    tasks_app: offload.App, serve: Serve
) -> None:
    later = datetime.now(UTC) + timedelta(hours=1)
    nodes: list[dict[str, Any]] = [
        {"name": "a", "task": "add", "args": [1, 2]},
        {"name": "b", "task": "echo", "args": ("b",), "after": ["a"], "run_at": later},
    ]
    with Client(serve(tasks_app)) as client:
        stored = client.enqueue_workflow(nodes, name="pair")
        assert isinstance(stored, WorkflowEnqueued) and sorted(stored.nodes) == ["a", "b"]
        assert tasks_app.job(stored.nodes["b"]).job().run_at == later
        read = client.workflow(stored.id)
        assert (read["name"], read["state"], read["total"]) == ("pair", "running", 2)
        assert [node["after"] for node in read["nodes"]] == [[], ["a"]]
        other = client.enqueue_workflow([{"name": "only", "task": "echo"}])
        page = client.workflows(limit=1)
        assert ([w["id"] for w in page["workflows"]], page["next"]) == ([other.id], other.id)
        rest = client.workflows(cursor=page["next"])
        assert [w["id"] for w in rest["workflows"]] == [stored.id]
        changed = client.cancel_workflow(stored.id)
        assert sorted(changed, key=lambda c: c.id) == [
            JobChange(stored.nodes[name], "default", offload.JobState.CANCELLED)
            for name in ("a", "b")
        ]
        assert tasks_app.workflow(stored.id).status() is offload.WorkflowState.CANCELLED


def test_errors_are_offload_s_own(tasks_app: offload.App, serve: Serve) -> None:
    with Client(serve(tasks_app)) as client:
        with pytest.raises(offload.WorkflowNotFound) as missing:
            client.workflow(999_999)
        assert missing.value.workflow_id == 999_999
        with pytest.raises(offload.WorkflowNotFound):
            client.cancel_workflow(999_999)
        cycle = [
            {"name": "a", "task": "echo", "after": ["b"]},
            {"name": "b", "task": "echo", "after": ["a"]},
        ]
        with pytest.raises(offload.InvalidWorkflow) as invalid:
            client.enqueue_workflow(cycle)
        assert invalid.value.node in ("a", "b")
        with pytest.raises(offload.UnknownDependency) as unknown:
            client.enqueue("echo", depends_on=[999_999])
        assert unknown.value.job_id == 999_999
        with pytest.raises(offload.ValidationError, match="node 0: args"):
            client.enqueue_workflow([{"name": "a", "task": "echo", "args": "ab"}])
        with pytest.raises(offload.ValidationError, match="workflow id"):
            client.workflow("1")  # type: ignore[arg-type]
    assert tasks_app.jobs() == [] and tasks_app.workflows() == []


def test_a_job_can_wait_for_jobs(tasks_app: offload.App, serve: Serve) -> None:
    with Client(serve(tasks_app)) as client:
        parent = client.enqueue("add", [1, 2])
        child = client.enqueue("echo", depends_on=[parent.id], on_parent_failure="run")
        assert child.job is not None
        assert (child.job.state, child.job.parents) == (offload.JobState.WAITING, 1)


def test_async_client_makes_every_workflow_call(tasks_app: offload.App) -> None:
    async def main() -> None:
        transport = httpx.ASGITransport(app=offload.asgi(tasks_app))
        async with AsyncClient("http://api", transport=transport) as client:
            stored = await client.enqueue_workflow([{"name": "a", "task": "echo"}], name="one")
            assert (await client.workflow(stored.id))["name"] == "one"
            assert [w["id"] for w in (await client.workflows())["workflows"]] == [stored.id]
            [change] = await client.cancel_workflow(stored.id)
            assert change.state is offload.JobState.CANCELLED

    asyncio.run(main())
