"""The worker-child protocol: typed messages, framed once, read back many per system call."""

from __future__ import annotations

import dataclasses
import os
import threading

import pytest

from offload.core.job import ParentOutcome
from offload.core.states import JobState
from offload.runtime.processes.protocol import (
    READ_SIZE,
    Cancel,
    Done,
    Frames,
    Message,
    Report,
    Run,
    encode,
    encode_run,
    send,
)
from tests.runtime.jobs import running_job


def pipe_with(*messages: Message) -> tuple[int, int]:
    """A pipe whose read end holds `messages`, sent as the worker and children send them."""
    read_fd, write_fd = os.pipe()
    send(write_fd, b"".join(encode(message) for message in messages))
    return read_fd, write_fd


def test_many_messages_come_back_whole_and_in_order() -> None:
    sent: list[Message] = [
        Run(1, 1, "default", "add", [2, 3], {}),
        Cancel(1),
        Report(2, 0.5, None),
        Report(2, 1.0, "hello" * 100),
        Done(2, True, "5", False, False, 0.25),
        Done(
            3, False, {"type": "ValueError", "message": "x", "traceback": None}, False, True, None
        ),
    ]
    read_fd, write_fd = pipe_with(*sent)
    frames = Frames(read_fd)
    assert frames.ready()
    assert frames.fill()
    assert frames.messages() == sent
    assert not frames.ready()
    assert frames.messages() == []
    os.close(write_fd)
    os.close(read_fd)


def test_a_job_is_sent_as_the_run_of_its_fields() -> None:
    job = running_job("add", "default")
    parent = ParentOutcome(3, "left", JobState.SUCCEEDED, {"n": 1})
    job = dataclasses.replace(job, args=[2, 3], kwargs={"x": "y"}, parent_outcomes=(parent,))
    read_fd, write_fd = pipe_with()
    send(write_fd, encode_run(job))
    frames = Frames(read_fd)
    assert frames.fill()
    (run,) = frames.messages()
    assert run == Run(7, 2, "default", "add", [2, 3], {"x": "y"}, [dataclasses.asdict(parent)])
    assert isinstance(run, Run) and run.outcomes() == (parent,)
    os.close(write_fd)
    os.close(read_fd)


def test_an_outcome_goes_through_as_it_came() -> None:
    outcome = (False, {"type": "KeyError", "message": "k", "traceback": "..."}, True, False)
    read_fd, write_fd = pipe_with(Done.of(7, outcome, 1.5))
    frames = Frames(read_fd)
    assert frames.fill()
    (done,) = frames.messages()
    assert isinstance(done, Done)
    assert (done.job_id, done.outcome, done.duration) == (7, outcome, 1.5)
    os.close(write_fd)
    os.close(read_fd)


def test_a_message_larger_than_one_read_waits_until_complete() -> None:
    read_fd, write_fd = os.pipe()
    big = Report(1, 0.25, "x" * (3 * READ_SIZE + 17))

    def sender() -> None:
        send(write_fd, encode(big) + encode(Cancel(2)))

    thread = threading.Thread(target=sender)
    thread.start()
    frames = Frames(read_fd)
    got: list[Message] = []
    while len(got) < 2:
        assert frames.fill()
        got += frames.messages()
    thread.join()
    assert got == [big, Cancel(2)]
    os.close(write_fd)
    os.close(read_fd)


def test_a_header_alone_is_no_message_yet() -> None:
    read_fd, write_fd = os.pipe()
    data = encode(Cancel(9))
    os.write(write_fd, data[:8])
    frames = Frames(read_fd)
    assert frames.fill()
    assert frames.messages() == []  # the header alone is no message yet
    os.write(write_fd, data[8:])
    assert frames.fill()
    assert frames.messages() == [Cancel(9)]
    os.close(write_fd)
    assert frames.ready()  # the end of the pipe is readable
    assert not frames.fill()
    os.close(read_fd)


def framed(body: bytes) -> bytes:
    """`body` behind a header that gives its length, as `encode` writes it."""
    return len(body).to_bytes(8, "big") + body


CORRUPT = [
    (b"stray output of a task" + encode(Cancel(1)), "corrupt message header"),
    (framed(b"not json"), "corrupt message on the pipe"),
    (framed(b'["launch", 1]'), "corrupt message on the pipe"),  # no such kind
    (framed(b'["cancel"]'), "corrupt message on the pipe"),  # a field short
    (framed(b"{}"), "corrupt message on the pipe"),
]


@pytest.mark.parametrize(("data", "error"), CORRUPT)
def test_corrupt_bytes_read_as_a_broken_pipe(data: bytes, error: str) -> None:
    read_fd, write_fd = os.pipe()
    os.write(write_fd, data)
    frames = Frames(read_fd)
    assert frames.fill()
    with pytest.raises(ConnectionError, match=error):
        frames.messages()
    os.close(write_fd)
    os.close(read_fd)
