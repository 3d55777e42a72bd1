"""Typed usages of the Python API: `mypy` (strict) must accept every line, and each
`assert_type` pins what a call gives. Checked by the project's mypy run and by
`test_mypy.py`; never imported."""

from __future__ import annotations

from typing import assert_type

import offload
from offload.testing import harness

app = offload.App("sqlite:///typing.db")


@app.task
def add(a: int, b: int = 0) -> int:
    return a + b


@app.task(queue="mail", max_attempts=5)
def send(to: str, *, subject: str) -> None:
    pass


@app.task(name="fetch")
async def fetch(url: str) -> bytes:
    return url.encode()


as_task: offload.Task[[int, int], int] = add
assert_type(add.enqueue(1, 2), offload.JobHandle[int])
assert_type(add.enqueue(1), offload.JobHandle[int])
assert_type(add.enqueue(a=1, b=2).result(timeout=1), int)
assert_type(add(1, 2), int)
fast: offload.Task[[int, int], int] = add.options(queue="fast", priority=5, delay=1.5)
assert_type(add.options(queue="fast").enqueue(3).result(), int)
assert_type(send.enqueue("ada@example.org", subject="hi"), offload.JobHandle[None])
assert_type(add.enqueue_many([offload.call(1, 2), (3,)]), list[offload.JobHandle[int]])

as_async_task: offload.AsyncTask[[str], bytes] = fetch
as_plain_task: offload.Task[[str], bytes] = fetch
assert_type(fetch.enqueue("https://example.org"), offload.JobHandle[bytes])
assert_type(fetch.options(queue="web").enqueue("x").result(), bytes)


async def caller() -> None:
    handle = await add.enqueue_async(1, 2)
    assert_type(handle, offload.JobHandle[int])
    assert_type(await handle.result_async(), int)
    assert_type(await fetch("direct call"), bytes)
    assert_type(await fetch.enqueue_async("x"), offload.JobHandle[bytes])


with harness(app) as jobs:
    assert_type(jobs.perform_job(add, 1, 2), int)
    assert_type(jobs.perform_job(fetch, "x"), bytes)
    assert_type(jobs.assert_enqueued(add, args=[1, 2]), offload.Job)
    assert_type(jobs.drain().succeeded, int)
