"""A full SQLite database (RELIABILITY.md test 15, CI size: a `max_size_mb` cap): producers
get StorageFull naming the file and the limit, the worker rides it out, and once space is
freed every acknowledged job ends succeeded, with the file intact."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

import offload
from offload import JobState, StorageFull
from tests.faults.conftest import StartWorker, basic_app

pytestmark = pytest.mark.timeout(180)


def test_full_database_then_freed(tmp_path: Path, start_worker: StartWorker) -> None:
    path = tmp_path / "jobs.db"
    url = f"sqlite:///{path}"
    offload.App(url).migrate()
    with sqlite3.connect(path) as db:  # ballast, deleted later to free space
        db.execute("CREATE TABLE ballast (b BLOB)")
        db.executemany("INSERT INTO ballast VALUES (?)", [(b"\0" * 65536,) for _ in range(64)])
    capped = f"{url}?max_size_mb={path.stat().st_size / 2**20 + 1:.2f}"
    worker = start_worker(capped, "w", executor="thread", concurrency=2, poll=0.2)
    producer = basic_app(capped)
    big = "x" * 8000  # in the arguments, and again in each result: outcomes need pages too
    acked: list[int] = []
    try:
        with pytest.raises(StorageFull) as info:
            for _ in range(10_000):
                acked.append(producer.enqueue("sleep", [0.002, big]).id)
        message = str(info.value)
        assert str(path) in message and "max_page_count=" in message, message
        assert info.value.location == str(path)
        assert 10 < len(acked) < 10_000
        log = tmp_path / "w.log"
        deadline = time.monotonic() + 30
        while "database unavailable" not in log.read_text():  # its outcomes could not fit
            assert time.monotonic() < deadline, log.read_text()[-2000:]
            assert worker.poll() is None, log.read_text()[-2000:]
            time.sleep(0.1)
        with sqlite3.connect(path) as db:
            db.execute("DELETE FROM ballast")
        deadline = time.monotonic() + 60
        while True:
            states = {producer.job(i).status() for i in acked}
            if states == {JobState.SUCCEEDED}:
                break
            assert time.monotonic() < deadline, f"acked jobs still {states}"
            assert worker.poll() is None, log.read_text()[-2000:]
            time.sleep(0.2)
        deadline = time.monotonic() + 10
        while "database back after" not in log.read_text():  # once writes held for a second
            assert time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.1)
        assert "Traceback" not in log.read_text(), log.read_text()[-3000:]
        with sqlite3.connect(path) as db:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        producer.close()
