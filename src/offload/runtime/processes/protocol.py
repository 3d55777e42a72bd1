"""What the worker and a child say to each other over their pipe, and how it is framed.

The worker sends `Run` and `Cancel`; the child answers with `Report` (a running job's
progress) and `Done` (a job's outcome). Each message travels as its JSON array (its kind,
then its fields in order) after an 8-byte big-endian length. Both ends write whole frames
with `send` and read with `Frames`, which takes whatever the pipe holds in one system call
and splits it: with short jobs a child answers thousands of times a second.
"""

from __future__ import annotations

import os
import select
import struct
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from operator import attrgetter
from typing import Any

import orjson

from offload.core.job import Job, ParentOutcome
from offload.runtime.running import Outcome


# Not frozen: a frozen dataclass takes four times as long to build, and the worker builds
# one message and reads another for every job.
@dataclass(slots=True)
class Run:
    """Worker to child: run this job after those sent before it."""

    job_id: int
    attempt: int
    queue: str
    task: str
    args: list[Any]
    kwargs: dict[str, Any]
    #: How the job's parents ended: ParentOutcome values on the worker's side, their
    #: JSON objects once through the pipe (`outcomes` turns them back).
    parents: list[ParentOutcome] | list[dict[str, Any]] = field(default_factory=list)

    def outcomes(self) -> tuple[ParentOutcome, ...]:
        """The parents as ParentOutcome values, whichever side of the pipe this is."""
        return tuple(
            p if isinstance(p, ParentOutcome) else ParentOutcome.from_json(p) for p in self.parents
        )


def encode_run(job: Job) -> bytes:
    """The frame of a `Run` of `job`, as `encode` would write it, without building the Run
    (the worker sends one per job)."""
    body = orjson.dumps(
        ("run", job.id, job.attempt, job.queue, job.task, job.args, job.kwargs,
         job.parent_outcomes)
    )  # fmt: skip
    return _HEADER.pack(len(body)) + body


@dataclass(slots=True)
class Cancel:
    """Worker to child: drop this job if it has not started (the child answers `Done`)."""

    job_id: int


@dataclass(slots=True)
class Report:
    """Child to worker: how far a running job is."""

    job_id: int
    fraction: float
    message: str | None


@dataclass(slots=True)
class Done:
    """Child to worker: how a job ended (see `offload.runtime.running.Outcome`)."""

    job_id: int
    ok: bool
    payload: str | dict[str, Any]
    permanent: bool
    cancelled: bool
    #: Seconds the run took in the child (None: it never started).
    duration: float | None

    @classmethod
    def of(cls, job_id: int, outcome: Outcome, duration: float | None) -> Done:
        return cls(job_id, *outcome, duration)

    @property
    def outcome(self) -> Outcome:
        return self.ok, self.payload, self.permanent, self.cancelled


Message = Run | Cancel | Report | Done

#: Each message's kind on the wire.
_KINDS: dict[str, type[Message]] = {"run": Run, "cancel": Cancel, "report": Report, "done": Done}
_TAGS = {kind: tag for tag, kind in _KINDS.items()}


def _values_of(kind: type[Message]) -> Callable[[Message], tuple[Any, ...]]:
    """A function giving a message's field values in order (one C call: attrgetter)."""
    names = [f.name for f in fields(kind)]
    get = attrgetter(*names)
    return get if len(names) > 1 else lambda message: (get(message),)


_VALUES = {kind: _values_of(kind) for kind in _KINDS.values()}

_HEADER = struct.Struct(">Q")
#: A length above this (1 TiB) is no message of ours: the bytes on the pipe are corrupt.
MAX_MESSAGE = 1 << 40
#: Bytes taken from the pipe per read (a Linux pipe holds 64 KiB by default).
READ_SIZE = 1 << 16


def encode(message: Message) -> bytes:
    """`message` as it goes on the pipe: the length of its JSON, then the JSON."""
    kind = type(message)
    body = orjson.dumps((_TAGS[kind], *_VALUES[kind](message)))
    return _HEADER.pack(len(body)) + body


def decode(body: bytes | bytearray) -> Message:
    """The message whose JSON is `body`; ConnectionError if it is none of ours."""
    try:
        tag, *values = orjson.loads(body)
        return _KINDS[tag](*values)
    except (ValueError, KeyError, TypeError) as exc:  # orjson's own error is a ValueError
        raise ConnectionError(f"corrupt message on the pipe: {exc}") from None


def send(fd: int, data: bytes | bytearray) -> None:
    """Write encoded messages to the pipe `fd`, all of them (blocking until they fit)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class Frames:
    """The receiving end of one pipe: buffered reads, whole messages out."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._buffer = bytearray()
        self._poller = select.poll()
        self._poller.register(fd, select.POLLIN)

    def ready(self) -> bool:
        """Bytes (or the end of the pipe) are waiting: `fill` will not block."""
        return bool(self._poller.poll(0))

    def fill(self) -> bool:
        """Take what the pipe holds, waiting for something if it is empty; False at its end."""
        data = os.read(self.fd, READ_SIZE)
        self._buffer += data
        return bool(data)

    def messages(self) -> list[Message]:
        """Every whole message received so far, in order; a partial one stays buffered.

        A corrupt header raises ConnectionError (an OSError): the pipe is as good as broken.
        """
        buffer = self._buffer
        found: list[Message] = []
        start = 0
        head = _HEADER.size
        while len(buffer) - start >= head:
            (size,) = _HEADER.unpack_from(buffer, start)
            if size > MAX_MESSAGE:
                raise ConnectionError(f"corrupt message header (length {size}) on the pipe")
            end = start + head + size
            if end > len(buffer):
                break
            found.append(decode(buffer[start + head : end]))
            start = end
        del buffer[:start]
        return found


__all__ = [
    "MAX_MESSAGE",
    "READ_SIZE",
    "Cancel",
    "Done",
    "Frames",
    "Message",
    "Report",
    "Run",
    "decode",
    "encode",
    "encode_run",
    "send",
]
