"""`Client` and `AsyncClient`: the same calls, each running an operation of
`_operations` with blocking or asyncio I/O (httpx)."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Generator, Mapping, Sequence
from types import TracebackType
from typing import Any, Self, TypeVar, Unpack

import httpx
from httpx_sse import aconnect_sse, connect_sse

from offload import __version__
from offload.client import _operations as ops
from offload.client._events import EventStream, Transient
from offload.client._operations import (
    Enqueued,
    EnqueueOptions,
    Operation,
    Pause,
    WorkflowEnqueued,
)
from offload.core.errors import ConfigurationError
from offload.core.events import Event
from offload.core.job import Job
from offload.core.records import JobChange
from offload.task import Call

T = TypeVar("T")
#: Seconds a request may take (to connect, or between bytes) unless `timeout` says.
DEFAULT_TIMEOUT = 30.0


def _settings(url: str, token: str | None, timeout: float) -> dict[str, Any]:
    """The httpx client settings of a client of the API at `url`, checked."""
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ConfigurationError(f"the API's URL must start with http:// or https://, got {url!r}")
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
        raise ConfigurationError(f"timeout must be a number of seconds > 0, got {timeout!r}")
    if not math.isfinite(timeout):
        raise ConfigurationError(f"timeout must be finite, got {timeout!r}")
    headers = {"User-Agent": f"offload-client/{__version__}", "Accept": "application/json"}
    if token is not None:
        if not isinstance(token, str) or not token.isprintable() or " " in token:
            raise ConfigurationError("token must be the text `offload tokens create` printed")
        headers["Authorization"] = f"Bearer {token}"
    return {"base_url": url, "headers": headers, "timeout": timeout}


class Client:
    """A client of an offload HTTP API at `url` (with its mount prefix, if any), sending
    `token` as a bearer token. Errors are offload's exceptions: the App's own (QueueFull,
    JobNotFound, ...) with the fields the server sent, else Unauthorized, Forbidden,
    RequestRejected or ApiError; no answer at all is BackendUnavailable, or OutcomeUnknown
    for a write that may have taken effect.

    Each call is one operation of `offload.client._operations` run by `_run`; `events`
    reads a stream whose state (`offload.client._events.EventStream`) both clients share.
    """

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._http = httpx.Client(transport=transport, **_settings(url, token, timeout))

    def __repr__(self) -> str:
        return f"Client({str(self._http.base_url)!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    def enqueue(
        self,
        task: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        **options: Unpack[EnqueueOptions],
    ) -> Enqueued:
        """Enqueue one job of the task named `task` (POST /v1/jobs); returns once it is
        stored. Options as `EnqueueOptions` says; `retry=True` rides out back pressure."""
        return self._run(ops.enqueue(task, args, kwargs, options))

    def enqueue_many(
        self, task: str, calls: Sequence[Call], **options: Unpack[EnqueueOptions]
    ) -> list[Enqueued]:
        """Enqueue a job of `task` per `offload.call(...)`, all or none (POST
        /v1/jobs:batch), with the options of `enqueue` but `idempotency_key`."""
        return self._run(ops.enqueue_many(task, calls, options))

    def job(self, job_id: int) -> Job:
        """The job as stored now; JobNotFound if there is none."""
        return self._run(ops.job(job_id))

    def wait(self, job_id: int, timeout: float | None = None) -> Job:
        """Poll the job until it is finished (succeeded, dead or cancelled) and return it;
        ResultTimeout after `timeout` seconds."""
        return self._run(ops.wait(job_id, timeout))

    def cancel(self, job_id: int) -> Job:
        """Cancel a queued job (a running one is asked to stop); the job after."""
        return self._run(ops.change(job_id, "cancel"))

    def retry(self, job_id: int) -> Job:
        """Run a dead, cancelled or shed job again; the job after."""
        return self._run(ops.change(job_id, "retry"))

    def enqueue_workflow(
        self, nodes: Sequence[Mapping[str, Any]], *, name: str | None = None
    ) -> WorkflowEnqueued:
        """Store a DAG of named nodes, all or none (POST /v1/workflows): each node a
        mapping of `name`, `task`, `args`, `kwargs`, `after` (node names), and options
        (`on_parent_failure`, `queue`, `priority`, `delay`, `run_at`, ...)."""
        return self._run(ops.enqueue_workflow(nodes, name))

    def workflow(self, workflow_id: int) -> dict[str, Any]:
        """The workflow, its state and every node's (the API's `Workflow` answer);
        WorkflowNotFound if there is none."""
        return self._run(ops.workflow(workflow_id))

    def workflows(self, *, cursor: int | None = None, limit: int = 50) -> dict[str, Any]:
        """A page of workflows, newest first: `{"workflows": [...], "next": CURSOR}`."""
        return self._run(ops.workflows(cursor, limit))

    def cancel_workflow(self, workflow_id: int) -> list[JobChange]:
        """Cancel every unfinished node (running ones are asked to stop); the jobs changed."""
        return self._run(ops.cancel_workflow(workflow_id))

    def events(
        self,
        job_id: int | None = None,
        *,
        queue: str | None = None,
        channel: str | None = None,
        last_event_id: str | None = None,
        retry_for: float = 60.0,
    ) -> Generator[Event, None, None]:
        """The events of a job (GET /v1/jobs/{id}/events: ending after its terminal event),
        or of every job change and notify on `queue` and/or `channel` (GET /v1/events:
        endless), oldest first, each once. It starts after `last_event_id` (an event's
        `cursor` text) when given, and reconnects and resumes by itself when a connection
        drops; connections failing for `retry_for` seconds in a row raise
        BackendUnavailable."""
        stream = EventStream(job_id, queue, channel, last_event_id, retry_for)
        while not stream.done:
            try:
                with connect_sse(
                    self._http, "GET", stream.url(), headers=stream.headers()
                ) as source:
                    if source.response.status_code not in (200, 204):
                        source.response.read()
                    stream.opened(source.response)
                    for message in source.iter_sse():
                        event = stream.received(message)
                        if event is not None:
                            yield event
                        if stream.done:
                            return
            except (httpx.TransportError, Transient) as exc:
                time.sleep(stream.failed(exc))

    def _run(self, operation: Operation[T]) -> T:
        """Run `operation` to its value: send its requests, take its pauses."""
        answer: httpx.Response | None = None
        failure: httpx.TransportError | None = None
        try:
            while True:
                step = operation.send(answer) if failure is None else operation.throw(failure)
                answer, failure = None, None
                if isinstance(step, Pause):
                    time.sleep(step.seconds)
                    continue
                try:
                    answer = self._http.request(
                        step.method, step.path, content=step.body, headers=step.headers
                    )
                except httpx.TransportError as exc:
                    failure = exc
        except StopIteration as done:
            value: T = done.value
            return value


class AsyncClient:
    """`Client` for asyncio code: the same calls, awaited."""

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._http = httpx.AsyncClient(transport=transport, **_settings(url, token, timeout))

    def __repr__(self) -> str:
        return f"AsyncClient({str(self._http.base_url)!r})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connections."""
        await self._http.aclose()

    async def enqueue(
        self,
        task: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        **options: Unpack[EnqueueOptions],
    ) -> Enqueued:
        """`Client.enqueue`."""
        return await self._run(ops.enqueue(task, args, kwargs, options))

    async def enqueue_many(
        self, task: str, calls: Sequence[Call], **options: Unpack[EnqueueOptions]
    ) -> list[Enqueued]:
        """`Client.enqueue_many`."""
        return await self._run(ops.enqueue_many(task, calls, options))

    async def job(self, job_id: int) -> Job:
        """`Client.job`."""
        return await self._run(ops.job(job_id))

    async def wait(self, job_id: int, timeout: float | None = None) -> Job:
        """`Client.wait`."""
        return await self._run(ops.wait(job_id, timeout))

    async def cancel(self, job_id: int) -> Job:
        """`Client.cancel`."""
        return await self._run(ops.change(job_id, "cancel"))

    async def retry(self, job_id: int) -> Job:
        """`Client.retry`."""
        return await self._run(ops.change(job_id, "retry"))

    async def enqueue_workflow(
        self, nodes: Sequence[Mapping[str, Any]], *, name: str | None = None
    ) -> WorkflowEnqueued:
        """`Client.enqueue_workflow`."""
        return await self._run(ops.enqueue_workflow(nodes, name))

    async def workflow(self, workflow_id: int) -> dict[str, Any]:
        """`Client.workflow`."""
        return await self._run(ops.workflow(workflow_id))

    async def workflows(self, *, cursor: int | None = None, limit: int = 50) -> dict[str, Any]:
        """`Client.workflows`."""
        return await self._run(ops.workflows(cursor, limit))

    async def cancel_workflow(self, workflow_id: int) -> list[JobChange]:
        """`Client.cancel_workflow`."""
        return await self._run(ops.cancel_workflow(workflow_id))

    async def events(
        self,
        job_id: int | None = None,
        *,
        queue: str | None = None,
        channel: str | None = None,
        last_event_id: str | None = None,
        retry_for: float = 60.0,
    ) -> AsyncIterator[Event]:
        """`Client.events`, iterated with `async for`."""
        stream = EventStream(job_id, queue, channel, last_event_id, retry_for)
        while not stream.done:
            try:
                async with aconnect_sse(
                    self._http, "GET", stream.url(), headers=stream.headers()
                ) as source:
                    if source.response.status_code not in (200, 204):
                        await source.response.aread()
                    stream.opened(source.response)
                    async for message in source.aiter_sse():
                        event = stream.received(message)
                        if event is not None:
                            yield event
                        if stream.done:
                            return
            except (httpx.TransportError, Transient) as exc:
                await asyncio.sleep(stream.failed(exc))

    async def _run(self, operation: Operation[T]) -> T:
        """`Client._run` with asyncio I/O."""
        answer: httpx.Response | None = None
        failure: httpx.TransportError | None = None
        try:
            while True:
                step = operation.send(answer) if failure is None else operation.throw(failure)
                answer, failure = None, None
                if isinstance(step, Pause):
                    await asyncio.sleep(step.seconds)
                    continue
                try:
                    answer = await self._http.request(
                        step.method, step.path, content=step.body, headers=step.headers
                    )
                except httpx.TransportError as exc:
                    failure = exc
        except StopIteration as done:
            value: T = done.value
            return value
