"""Arguments a registered task's function cannot take are refused at enqueue, naming the task
and the mismatch, and store nothing (issue 13, item 2)."""

from __future__ import annotations

from typing import Any

import pytest

import offload
from tests.conformance.helpers import RawDB


@pytest.fixture
def send_welcome(app: offload.App) -> offload.Task[[int], str]:
    @app.task(name="send_welcome", queue="mail")
    def send_welcome(user_id: int) -> str:
        return f"welcome {user_id}"

    return send_welcome


@pytest.mark.usefixtures("stored")
def test_enqueue_refuses_arguments_the_function_cannot_take(
    send_welcome: offload.Task[..., str],
) -> None:
    with pytest.raises(offload.ArgumentsMismatch) as info:
        send_welcome.enqueue(1, 2, 3)
    assert (info.value.task, info.value.index) == ("send_welcome", None)
    assert str(info.value) == (
        "arguments do not match task 'send_welcome': too many positional arguments; "
        "it takes (user_id)"
    )
    with pytest.raises(offload.ArgumentsMismatch, match="missing a required argument"):
        send_welcome.enqueue()
    with pytest.raises(offload.ArgumentsMismatch, match="unexpected keyword argument 'user'"):
        send_welcome.enqueue(1, user=1)
    with pytest.raises(offload.ArgumentsMismatch, match="multiple values for argument"):
        send_welcome.options(priority=5).enqueue(1, user_id=1)


@pytest.mark.usefixtures("stored")
def test_enqueue_many_refuses_the_whole_batch_naming_the_bad_call(
    send_welcome: offload.Task[..., str],
) -> None:
    calls = [offload.call(1), offload.call(2), offload.call(3, 4), offload.call(5)]
    with pytest.raises(offload.ArgumentsMismatch) as info:
        send_welcome.enqueue_many(calls)
    assert (info.value.task, info.value.index) == ("send_welcome", 2)
    assert str(info.value).startswith("call 2: arguments do not match task 'send_welcome'")
    with pytest.raises(offload.ArgumentsMismatch, match="call 1: "):
        send_welcome.enqueue_many([(1,), ()])


@pytest.mark.usefixtures("stored")
def test_app_enqueue_by_name_checks_a_registered_task(
    app: offload.App, send_welcome: offload.Task[..., str]
) -> None:
    with pytest.raises(offload.ArgumentsMismatch) as info:
        app.enqueue("send_welcome", [1, 2, 3])
    assert info.value.task == "send_welcome"
    with pytest.raises(offload.ArgumentsMismatch, match="unexpected keyword argument 'nope'"):
        app.enqueue("send_welcome", [1], {"nope": True}, queue="elsewhere")


def test_arguments_that_fit_are_stored_as_given(
    app: offload.App, send_welcome: offload.Task[..., str], db_url: str
) -> None:
    """Positional, keyword and batch calls that bind go through, and nothing else."""
    first = send_welcome.enqueue(1)
    second = send_welcome.enqueue(user_id=2)
    batch = send_welcome.enqueue_many([(3,), offload.call(user_id=4)])
    third = app.enqueue("send_welcome", [], {"user_id": 5})

    @app.task(name="flexible")
    def flexible(a: int, *rest: Any, flag: bool = False, **extra: Any) -> None: ...

    flexible.enqueue(1, 2, 3, 4, flag=True, anything="goes")
    jobs = {job.id: job for job in app.jobs(limit=100)}
    assert [(jobs[h.id].args, jobs[h.id].kwargs) for h in (first, second, *batch, third)] == [
        ([1], {}),
        ([], {"user_id": 2}),
        ([3], {}),
        ([], {"user_id": 4}),
        ([], {"user_id": 5}),
    ]
    assert len(RawDB(db_url).all_rows()) == 6


@pytest.mark.usefixtures("stored")
def test_enqueue_many_names_the_call_whose_arguments_are_not_json_or_too_large(
    app: offload.App, send_welcome: offload.Task[..., str]
) -> None:
    """A batch refused for one call's payload says which call and keeps the error's class
    and fields (`stored`: nothing changed)."""
    with pytest.raises(offload.SerializationError) as info:
        send_welcome.enqueue_many([(1,), (2,), ({1, 2},)])
    assert info.value.index == 2
    assert str(info.value).startswith("call 2: argument 0 is a builtins.set")
    app.payload_limit = 64
    with pytest.raises(offload.PayloadTooLarge) as large:
        send_welcome.enqueue_many([(1,), ("x" * 100,)])
    assert (large.value.index, large.value.what, large.value.limit) == (1, "arguments", 64)
    assert str(large.value).startswith("call 1: arguments ")
