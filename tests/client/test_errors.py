"""The client raises offload's exception classes, with the fields the server sent, for
every error status; refuses bad input before sending; and maps a missing answer."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

import offload
from offload.client import AsyncClient, Client
from offload.core.errors import ApiError, Forbidden, RequestRejected, Unauthorized

Call = Callable[[AsyncClient], Awaitable[object]]


def _raised(app: offload.App, call: Call, **settings: Any) -> BaseException:
    """What `call` raises through a client of `offload.asgi(app, **settings)`."""

    async def main() -> BaseException:
        transport = httpx.ASGITransport(app=offload.asgi(app, **settings))
        async with AsyncClient("http://api", transport=transport) as client:
            try:
                await call(client)
            except offload.OffloadError as exc:
                return exc
        raise AssertionError("the call did not raise")

    return asyncio.run(main())


def test_404_is_job_not_found(tasks_app: offload.App) -> None:
    for call in (
        lambda c: c.job(404),
        lambda c: c.cancel(404),
        lambda c: c.retry(404),
        lambda c: c.wait(404),
    ):
        error = _raised(tasks_app, call)
        assert type(error) is offload.JobNotFound
        assert (error.job_id, str(error)) == (404, "no job with id 404")


def test_409_duplicate_job_idempotency_conflict_invalid_transition(
    tasks_app: offload.App,
) -> None:
    held = tasks_app.enqueue("once", ["k"])
    error = _raised(tasks_app, lambda c: c.enqueue("once", ["k"]))
    assert type(error) is offload.DuplicateJob
    assert (error.key, error.job_id) == (held.job().unique_key, held.id)

    first = tasks_app.enqueue("add", [1, 2], idempotency_key="key")
    error = _raised(tasks_app, lambda c: c.enqueue("add", [1, 3], idempotency_key="key"))
    assert type(error) is offload.IdempotencyConflict
    assert (error.key, error.job_id) == ("key", first.id)

    error = _raised(tasks_app, lambda c: c.retry(first.id))
    assert type(error) is offload.InvalidTransition
    assert (error.job_id, error.state, error.operation) == (first.id, "available", "retry")


def test_422_unknown_task_arguments_and_fields(tasks_app: offload.App) -> None:
    error = _raised(tasks_app, lambda c: c.enqueue("ad", [1, 2]))
    assert type(error) is offload.UnknownTask
    assert error.name == "ad" and "did you mean 'add'?" in str(error)

    error = _raised(tasks_app, lambda c: c.enqueue("add", [1]))
    assert type(error) is offload.ArgumentsMismatch
    assert (error.task, error.index) == ("add", None) and "'b'" in error.reason

    error = _raised(tasks_app, lambda c: c.enqueue("add", [1, 2], priority="high"))  # type: ignore[arg-type]
    assert type(error) is RequestRejected and isinstance(error, offload.ValidationError)
    assert (error.status, error.type, error.field) == (422, "validation_error", "priority")

    error = _raised(tasks_app, lambda c: c.enqueue("add", [1, 2], priority=5000))
    assert isinstance(error, offload.ValidationError) and "priority" in str(error)
    assert tasks_app.jobs() == []


def test_413_payload_and_body_too_large(tasks_app: offload.App) -> None:
    big = "x" * (tasks_app.payload_limit + 1)
    error = _raised(tasks_app, lambda c: c.enqueue("echo", [big]))
    assert type(error) is offload.PayloadTooLarge
    assert (error.what, error.limit) == ("arguments", tasks_app.payload_limit)

    error = _raised(tasks_app, lambda c: c.enqueue("echo", ["y" * 200]), body_limit=100)
    assert type(error) is RequestRejected
    assert (error.status, error.type) == (413, "body_too_large")
    assert tasks_app.jobs() == []


def test_401_and_403(tasks_app: offload.App) -> None:
    token = tasks_app.create_token("producer", ["enqueue"])
    error = _raised(tasks_app, lambda c: c.enqueue("add", [1, 2]))
    assert type(error) is Unauthorized and isinstance(error, ApiError)
    assert (error.status, error.type) == (401, "unauthorized")

    async def listing(client: AsyncClient) -> object:
        await client.enqueue("add", [1, 2])  # allowed: enqueue scope
        return await client.job(1)  # needs read

    async def main() -> BaseException:
        transport = httpx.ASGITransport(app=offload.asgi(tasks_app))
        async with AsyncClient("http://api", token, transport=transport) as client:
            try:
                await listing(client)
            except offload.OffloadError as exc:
                return exc
        raise AssertionError("no error")

    error = asyncio.run(main())
    assert type(error) is Forbidden
    assert (error.status, error.type) == (403, "forbidden") and "read scope" in str(error)


def test_503_queue_full_and_overloaded_carry_retry_after(tasks_app: offload.App) -> None:
    tasks_app.queue("full", max_depth=1)
    tasks_app.queue("busy", admit_depth=1, admit_priority=5)
    tasks_app.enqueue("add", [1, 2], queue="full")
    tasks_app.enqueue("add", [1, 2], queue="busy")

    error = _raised(tasks_app, lambda c: c.enqueue("add", [3, 4], queue="full"))
    assert type(error) is offload.QueueFull
    assert (error.queue, error.depth, error.limit) == ("full", 1, 1)
    assert error.retry_after >= 1

    error = _raised(tasks_app, lambda c: c.enqueue_many("add", [offload.call(1, 2)], queue="busy"))
    assert type(error) is offload.Overloaded
    assert error.queue == "busy" and error.retry_after >= 1 and "admit" in error.reason
    assert len(tasks_app.jobs()) == 2


def test_503_schema_mismatch(db_url: str) -> None:
    fresh = offload.App(db_url, auto_migrate=False)  # never migrated
    try:
        error = _raised(fresh, lambda c: c.job(1), auth=False)
    finally:
        fresh.close()
    assert type(error) is offload.SchemaMismatch
    assert error.found == 0 and error.needed > 0


def _canned(status: int, body: bytes, **headers: str) -> httpx.MockTransport:
    return httpx.MockTransport(
        lambda request: httpx.Response(status, content=body, headers=headers)
    )


@pytest.mark.parametrize(
    ("status", "body", "kind", "type_"),
    [
        (
            400,
            b'{"type": "malformed_json", "message": "not JSON"}',
            RequestRejected,
            "malformed_json",
        ),
        (408, b'{"type": "body_timeout", "message": "slow"}', RequestRejected, "body_timeout"),
        (405, b'{"type": "method_not_allowed", "message": "no"}', ApiError, "method_not_allowed"),
        (500, b'{"type": "internal_error", "message": "oops"}', ApiError, "internal_error"),
        (502, b"<html>Bad Gateway</html>", ApiError, "http_error"),
        (503, b'{"type": "some_future_type", "message": "?"}', ApiError, "some_future_type"),
    ],
)
def test_answers_without_an_app_class(
    status: int, body: bytes, kind: type[ApiError], type_: str
) -> None:
    with (
        Client("http://api", transport=_canned(status, body)) as client,
        pytest.raises(kind) as caught,
    ):
        client.job(1)
    assert type(caught.value) is kind
    assert (caught.value.status, caught.value.type) == (status, type_)


def test_bad_input_is_refused_before_sending() -> None:
    sent: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(500)

    with Client("http://api", transport=httpx.MockTransport(record)) as client:
        with pytest.raises(offload.ValidationError, match="did you mean 'priority'"):
            client.enqueue("add", [1], priorty=3)  # type: ignore[call-arg]
        with pytest.raises(offload.SerializationError, match=r"argument 0 is a builtins\.object"):
            client.enqueue("add", [object()])
        with pytest.raises(offload.ValidationError, match="run_at must be an aware datetime"):
            client.enqueue("add", [1], run_at="2030-01-01")  # type: ignore[arg-type]
        with pytest.raises(offload.ValidationError, match="takes no idempotency_key"):
            client.enqueue_many("add", [offload.call(1)], idempotency_key="k")
        with pytest.raises(offload.ValidationError, match="call 1 is a tuple"):
            client.enqueue_many("add", [offload.call(1), (2,)])  # type: ignore[list-item]
        with pytest.raises(offload.ValidationError, match="retry_for must be"):
            client.enqueue("add", [1], retry=True, retry_for=-1)
        with pytest.raises(offload.ValidationError, match="a job id is an int"):
            client.job("1")  # type: ignore[arg-type]
    assert sent == []


def test_bad_settings_are_refused() -> None:
    with pytest.raises(offload.ConfigurationError, match="http:// or https://"):
        Client("127.0.0.1:8000")
    with pytest.raises(offload.ConfigurationError, match="timeout must be"):
        Client("http://api", timeout=0)
    with pytest.raises(offload.ConfigurationError, match="token must be"):
        AsyncClient("http://api", token="two words")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_no_answer_is_backend_unavailable_or_outcome_unknown() -> None:
    with Client(f"http://127.0.0.1:{_closed_port()}") as client:
        with pytest.raises(offload.BackendUnavailable, match="cannot reach the HTTP API") as got:
            client.enqueue("add", [1, 2])
        assert type(got.value) is offload.BackendUnavailable
        assert isinstance(got.value.__cause__, httpx.ConnectError)

    def timeout(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    with Client("http://api", transport=httpx.MockTransport(timeout)) as client:
        with pytest.raises(offload.OutcomeUnknown, match="may or may not have") as lost:
            client.enqueue("add", [1, 2])
        assert lost.value.operation == "POST /v1/jobs"
        with pytest.raises(offload.BackendUnavailable, match="no answer") as read:
            client.job(1)
        assert type(read.value) is offload.BackendUnavailable
