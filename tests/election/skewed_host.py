"""A host whose wall clock is off, as a process: `python -m tests.election.skewed_host URL
OFFSET SECONDS`. Python's wall clock (`time.time`, `time.time_ns`) reads OFFSET seconds off
before offload is imported (libfaketime is not available here; offload's code reads no
other wall clock, which `test_clock_skew` checks in its source). It then runs a worker with
an embedded scheduler, standing for both maintenance duties on a 1 s lease, for SECONDS.
"""

from __future__ import annotations

import sys
import threading
import time


def skew(offset: float) -> None:
    """Make this process's wall clock read `offset` seconds off."""
    real, real_ns = time.time, time.time_ns
    time.time = lambda: real() + offset
    time.time_ns = lambda: real_ns() + int(offset * 1e9)


def main(url: str, offset: float, seconds: float) -> None:
    skew(offset)
    import offload

    app = offload.App(url)

    @app.task(name="slow")
    def slow(seconds: float) -> None:
        time.sleep(seconds)

    @app.periodic("* * * * * *", name="every-second")
    @app.task(name="tick")
    def tick() -> None:
        return None

    scheduler = app.scheduler(leader_lease=1.0, rescue_interval=0.1, install_signals=False)
    worker = app.worker(
        executor="thread",
        concurrency=2,
        lease=5.0,
        rescue_interval=0.1,
        leader_lease=1.0,
        scheduler=scheduler,
    )
    threading.Timer(seconds, worker.stop).start()
    worker.run()


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]), float(sys.argv[3]))
