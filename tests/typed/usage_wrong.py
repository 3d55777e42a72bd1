"""Wrong usages of the Python API: `test_mypy.py` runs mypy on this file and requires
exactly the errors marked `# E: <text>` (each on its line, its message containing the
text), so a change that loosens the types fails that test. Excluded from the project's
own mypy run and from formatting (pyproject.toml); never imported."""

from __future__ import annotations

import offload
from offload.testing import harness

app = offload.App("sqlite:///typing.db")


@app.task
def add(a: int, b: int = 0) -> int:
    return a + b


@app.task(queue="mail")
def send(to: str, *, subject: str) -> None:
    pass


@app.task
async def fetch(url: str) -> bytes:
    return url.encode()


add.enqueue("1", 2)  # E: Argument 1 to "enqueue" of "Task" has incompatible type "str"; expected "int"
add.enqueue()  # E: Missing positional argument "a" in call to "enqueue" of "Task"
add.enqueue(1, 2, 3)  # E: Too many arguments for "enqueue" of "Task"
add.enqueue(1, queue="fast")  # E: Unexpected keyword argument "queue" for "enqueue" of "Task"
send.enqueue("ada@example.org")  # E: Missing named argument "subject" for "enqueue" of "Task"
add.options(queue=1)  # E: Argument "queue" to "options" of "Task" has incompatible type "int"
add.options(queu="fast")  # E: Unexpected keyword argument "queu" for "options" of "Task"
add.options(queue="fast").enqueue("x")  # E: incompatible type "str"; expected "int"
wrong_result: str = add.enqueue(1).result()  # E: Incompatible types in assignment (expression has type "int", variable has type "str")
wrong_handle: offload.JobHandle[str] = add.enqueue(1)  # E: Incompatible types in assignment
fetch.enqueue(42)  # E: Argument 1 to "enqueue" of "Task" has incompatible type "int"; expected "str"
not_bytes: str = fetch.enqueue("x").result()  # E: Incompatible types in assignment (expression has type "bytes", variable has type "str")
add.s("x")  # E: Argument 1 to "s" of "Task" has incompatible type "str"; expected "int"


async def caller() -> None:
    await add.enqueue_async("1")  # E: Argument 1 to "enqueue_async" of "Task" has incompatible type "str"
    text: str = await fetch("x")  # E: Incompatible types in assignment (expression has type "bytes", variable has type "str")


with harness(app) as jobs:
    jobs.perform_job(add, "1")  # E: No overload variant of "perform_job" of "Harness" matches
    jobs.assert_enqueued(add, arg=[1])  # E: Unexpected keyword argument "arg" for "assert_enqueued" of "Harness"
