"""A producer process for the group-commit kill test: `threads` threads and `tasks`
coroutines on one event loop enqueue `n` jobs between them, one per call, and print each
acknowledged id on its own line (flushed) as soon as the enqueue returns.

    python -m tests.apps.group_producer URL N THREADS TASKS
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading

import offload

_out = threading.Lock()


def acknowledged(job_id: int, n: int) -> None:
    line = f"{job_id} {n}\n".encode()
    with _out:
        os.write(1, line)  # unbuffered: printed means acknowledged, nothing held back


def main(url: str, n: int, threads: int, tasks: int) -> None:
    app = offload.App(url)
    task = app.task(name="noted")(lambda n: n)
    half = n // 2

    def produce(k: int) -> None:
        for i in range(k, half, threads):
            acknowledged(task.enqueue(i).id, i)

    async def coroutines() -> None:
        async def one(k: int) -> None:
            for i in range(half + k, n, tasks):
                acknowledged((await task.enqueue_async(i)).id, i)

        await asyncio.gather(*(one(k) for k in range(tasks)))

    pool = [threading.Thread(target=produce, args=(k,)) for k in range(threads)]
    for thread in pool:
        thread.start()
    asyncio.run(coroutines())
    for thread in pool:
        thread.join()
    os.write(1, b"done\n")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
