"""A Python client of the HTTP API (`offload serve`, `offload.asgi`): enqueue and inspect
jobs from a process without database access. Needs the `offload[client]` extra (httpx).

    from offload.client import Client

    with Client("http://127.0.0.1:8000", token=TOKEN) as client:
        job = client.enqueue("resize", ["cat.png"], {"width": 200}, retry=True).job
        done = client.wait(job.id, timeout=60)

`Client` blocks, `AsyncClient` is awaited; both raise offload's own exceptions (see
`Client`). Task arguments go in `args` and `kwargs`, apart from the options, as in
`App.enqueue` and the request body: a task may then take an argument named `queue`.
"""

from __future__ import annotations

from offload.core.errors import ExtraMissing

try:
    from offload.client._clients import DEFAULT_TIMEOUT, AsyncClient, Client
    from offload.client._operations import Enqueued, EnqueueOptions, WorkflowEnqueued
except ModuleNotFoundError as exc:
    if exc.name != "httpx":
        raise
    raise ExtraMissing.of("offload.client", "client", exc) from None

__all__ = [
    "DEFAULT_TIMEOUT",
    "AsyncClient",
    "Client",
    "EnqueueOptions",
    "Enqueued",
    "WorkflowEnqueued",
]
