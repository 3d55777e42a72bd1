"""The worker's one hook on job events, in batches: the job log (`offload.runtime.joblog`),
the metrics (`offload.runtime.metrics`) and the App's middleware (`offload.runtime.hooks`,
which turns a batch into the per-job events of `offload.core.middleware`) are observers.

The worker calls them from its loop's thread, in batches (the jobs one turn started, the runs
one turn saw end), in the supervisor process whatever the executor: a child process only
runs the job and reports its end back through a pipe. So an observer counts every job of
the worker without shared memory between processes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from offload.backends.params import Outcome
from offload.core.job import Job
from offload.runtime.executor import Finished


class JobObserver(Protocol):
    """What a worker tells an observer; each call must be cheap (it is on the hot path)."""

    def started(self, jobs: Sequence[Job]) -> None:
        """These jobs were handed to an executor (each job of a batch call on its own)."""
        ...

    def ended(self, runs: Sequence[Finished], outcomes: Sequence[Outcome]) -> None:
        """These runs ended, `outcomes[i]` being what the worker records for `runs[i]`."""
        ...
