"""Frames: the messages Connection.send_bytes writes, read back many per system call."""

from __future__ import annotations

import multiprocessing
import os
import threading

import pytest

from offload.runtime.pipes import READ_SIZE, Frames


def test_many_messages_come_back_whole_and_in_order() -> None:
    reader, writer = multiprocessing.Pipe(duplex=False)
    sent = [b"", b"x", b"hello" * 100, bytes(range(256)) * 10]
    for message in sent:
        writer.send_bytes(message)
    frames = Frames(reader.fileno())
    assert frames.ready()
    assert frames.fill()
    assert frames.messages() == sent
    assert not frames.ready()
    assert frames.messages() == []


def test_a_message_larger_than_one_read_waits_until_complete() -> None:
    reader, writer = multiprocessing.Pipe(duplex=False)
    big = os.urandom(3 * READ_SIZE + 17)

    def send() -> None:
        writer.send_bytes(big)
        writer.send_bytes(b"next")

    sender = threading.Thread(target=send)
    sender.start()
    frames = Frames(reader.fileno())
    got: list[bytes] = []
    while len(got) < 2:
        assert frames.fill()
        got += frames.messages()
    sender.join()
    assert got == [big, b"next"]


def test_the_long_header_form_is_understood() -> None:
    read_fd, write_fd = os.pipe()
    payload = b"long form"
    os.write(write_fd, (-1).to_bytes(4, "big", signed=True) + len(payload).to_bytes(8, "big"))
    frames = Frames(read_fd)
    assert frames.fill()
    assert frames.messages() == []  # the header alone is no message yet
    os.write(write_fd, payload)
    assert frames.fill()
    assert frames.messages() == [payload]
    os.close(write_fd)
    assert frames.ready()  # the end of the pipe is readable
    assert not frames.fill()
    os.close(read_fd)


def test_a_corrupt_header_reads_as_a_broken_pipe() -> None:
    read_fd, write_fd = os.pipe()
    os.write(write_fd, (-4).to_bytes(4, "big", signed=True) + b"junk")
    frames = Frames(read_fd)
    assert frames.fill()
    with pytest.raises(ConnectionError, match="corrupt message header"):
        frames.messages()
    os.close(write_fd)
    os.close(read_fd)
