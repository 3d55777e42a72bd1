"""The sweep: one pass sheds and brings back the jobs of every queue with a shed policy.

Run by the scheduler (every replica) each `sweep_interval`. Per queue: above `shed_depth`
jobs not started, its waiting jobs below `shed_priority` move to `shed`; at or under
`resume_depth`, the shed jobs of tasks declaring `sweep=hook` are leased to this sweeper
(so that no other replica's hook sees them), handed to the hook as one list of `(args,
kwargs)`, and end `succeeded` with the result `{"swept": true}`; then its other shed jobs
are re-admitted, oldest first, as many as fit under `shed_depth`. A hook that raises is
logged and its jobs go back to `shed`, for the next pass; a sweeper that dies holding them
leaves them to the rescue, which makes them available to run as ordinary jobs.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import orjson

from offload.backends.base import Backend
from offload.backends.params import (
    FinishParams,
    Lease,
    Outcome,
    ReleaseParams,
    SweepReadmitParams,
    SweepTakeParams,
)
from offload.core.states import JobState
from offload.core.task import Registry

log = logging.getLogger("offload.sweep")

#: A task's sweep hook: the shed jobs' (args, kwargs), oldest first.
Hook = Callable[[list[tuple[list[Any], dict[str, Any]]]], Any]

#: The result a job ended by its sweep hook gets, so that it reads apart from a run.
SWEPT_RESULT = orjson.dumps({"swept": True}).decode()


class Sweeper:
    """Sheds and brings back jobs of the queues whose stored policy has a shed watermark."""

    def __init__(
        self,
        backend: Backend,
        registry: Registry,
        *,
        batch: int = 1000,
        lease: float = 300.0,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.backend = backend
        self.batch = batch
        self.lease = lease
        self.clock = clock
        self.id = f"sweep:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.hooks: dict[str, Hook] = {
            d.name: d.options.sweep for d in registry.definitions() if d.options.sweep is not None
        }

    def sweep(self) -> None:
        """One pass over every queue with a shed policy (policies read from the database)."""
        for state in self.backend.queues.list():
            if state.policy.shed_depth is not None:
                self.sweep_queue(state.name)

    def sweep_queue(self, queue: str) -> None:
        """Shed; then call each sweep hook once with its task's shed jobs, and re-admit
        the others (hooks first: they add nothing to the queue, re-admitted jobs do)."""
        now = self.clock() if self.clock else None
        shed = self.backend.sweep.shed(queue)
        if shed:
            log.info("queue %s: shed %d waiting jobs", queue, len(shed))
        hooked = sorted(self.hooks)
        for task in hooked:
            self._call_hook(queue, task, now)
        back = self.backend.sweep.readmit(SweepReadmitParams(queue, hooked, now))
        if back:
            log.info("queue %s: re-admitted %d shed jobs", queue, len(back))

    def _call_hook(self, queue: str, task: str, now: datetime | None) -> None:
        taken = self.backend.sweep.take(
            SweepTakeParams(self.id, queue, task, self.batch, self.lease, now)
        )
        if not taken:
            return
        try:
            self.hooks[task]([(job.args, job.kwargs) for job in taken])
        except Exception:
            log.exception(
                "queue %s: the sweep hook of %s failed on %d shed jobs; they stay shed",
                queue,
                task,
                len(taken),
            )
            leases = [Lease(job.id, job.attempt) for job in taken]
            self.backend.sweep.untake(ReleaseParams(self.id, leases))
            return
        outcomes = [
            Outcome(job.id, job.attempt, JobState.SUCCEEDED, result=SWEPT_RESULT) for job in taken
        ]
        lost = self.backend.claims.finish(FinishParams(self.id, outcomes))
        log.info("queue %s: the sweep hook of %s did %d shed jobs", queue, task, len(taken))
        if lost:
            log.warning(
                "queue %s: %d swept jobs were rescued before the hook ended", queue, len(lost)
            )
