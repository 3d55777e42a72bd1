"""One slot of the process executor: a child process and the jobs it holds."""

from __future__ import annotations

import select
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from offload.core.job import Job
from offload.runtime.processes.protocol import Frames

#: Bytes of job messages a busy child may hold: a busy child reads its pipe only between
#: jobs, and a worker blocked writing to a full pipe while that child writes a large result
#: would wait on each other. Well under a pipe's 64 KiB, so such a write never blocks; a
#: larger job waits for an idle child.
PIPE_BUDGET = 16 * 1024


@dataclass(slots=True)
class Slot:
    """A child, the jobs sent to it and when the one it runs must end."""

    process: BaseProcess
    #: The worker's end of the child's pipe (kept open by holding it).
    conn: Connection
    #: Jobs sent to the child, in order: the first is running, the others wait in the child.
    jobs: deque[Job] = field(default_factory=deque)
    #: The size of each held job's message, by job id, and their sum (see PIPE_BUDGET).
    sizes: dict[int, int] = field(default_factory=dict)
    held: int = 0
    #: When the first job started (approximately: when its predecessor's result came).
    since: float = 0.0
    deadline: float | None = None
    jobs_done: int = 0
    #: Set once the child is worn out: it takes no more jobs and is replaced when idle.
    retire: bool = False
    kill_head: bool = False
    #: What the child sent, read many messages per system call.
    frames: Frames = field(init=False)
    #: Readable once the child has ended.
    ended: select.poll = field(init=False)

    def __post_init__(self) -> None:
        self.frames = Frames(self.conn.fileno())
        self.ended = select.poll()
        self.ended.register(self.process.sentinel, select.POLLIN)

    @property
    def fd(self) -> int:
        """The pipe to the child, for `protocol.send`."""
        return self.frames.fd

    def exited(self) -> bool:
        """The child has ended (its sentinel turned readable): one system call, where
        `Process.is_alive` builds and tears down a selector on every call."""
        return bool(self.ended.poll(0))

    def takes(self, size: int, depth: int) -> bool:
        """Room for one more job whose message is `size` bytes: an idle child takes any;
        a busy one while it holds fewer than `depth` jobs and the bytes fit PIPE_BUDGET."""
        if self.retire:
            return False
        if not self.jobs:
            return True
        return len(self.jobs) < depth and self.held + size <= PIPE_BUDGET

    def hold(self, job: Job, size: int) -> None:
        self.jobs.append(job)
        self.sizes[job.id] = size
        self.held += size

    def release(self, job: Job) -> None:
        """Forget a job that ended or was taken away from the child."""
        self.jobs.remove(job)
        self.held -= self.sizes.pop(job.id, 0)

    def release_head(self) -> Job:
        job = self.jobs.popleft()
        self.held -= self.sizes.pop(job.id, 0)
        return job

    def release_all(self) -> None:
        self.jobs.clear()
        self.sizes.clear()
        self.held = 0
