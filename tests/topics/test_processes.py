"""Topics served by real worker processes killed with SIGKILL: every group gets every
message at least once, its members share them, and a pipeline stage killed between
processing and acknowledging publishes each result downstream exactly once (3 groups x
2,000 messages through 5 kills; full size, with OFFLOAD_TEST_FULL=1: 10,000 messages)."""

from __future__ import annotations

import random
import signal
import subprocess
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path

import offload
from offload.backends.params import MessageReadParams
from tests.apps.topics import GROUPS
from tests.runtime.conftest import StartWorker
from tests.runtime.test_worker_processes import wait_until
from tests.sizes import sized

SETTINGS = {"app": "tests.apps.topics:app", "executor": "thread", "lease": 2, "rescue": 0.5}
#: Seconds each delivery takes: the run outlasts the kills.
HANDLE_SLEEP = 0.005


def ledger(tmp_path: Path) -> list[list[str]]:
    """The ledger's lines as [tag, offset, pid]."""
    path = tmp_path / "ledger.txt"
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


def lagging(app: offload.App, topic: str) -> dict[str, int]:
    """Lag per group of `topic` (0: every message handed out and over)."""
    (state,) = [t for t in app.topics() if t.name == topic]
    return {group.name: group.lag for group in state.groups}


def kill_and_replace(
    workers: list[subprocess.Popen[bytes]],
    start: Callable[[int], subprocess.Popen[bytes]],
    done: Callable[[], int],
    total: int,
) -> None:
    """SIGKILL a random worker 5 times mid-run, each time starting `start(index)` in its
    place: the k-th kill once `done()` (deliveries recorded) passes k/7 of `total`, and
    only while work is left, so that each kill lands on deliveries in flight."""
    rng = random.Random(7)
    for kill in range(1, 6):
        wait_until(lambda k=kill: done() >= total * k // 7, 60, f"progress before kill {kill}")
        assert done() < total, "the run ended before the kills: make it longer"
        victim = rng.randrange(len(workers))
        workers[victim].send_signal(signal.SIGKILL)
        workers[victim].wait(10)
        workers[victim] = start(victim)


def test_every_group_gets_every_message_through_kills(
    topics_app: offload.App, start_worker: StartWorker, tmp_path: Path
) -> None:
    total = sized(2_000, 10_000)
    for first in range(0, total, 1000):
        topics_app.publish_many("events", [{"n": i} for i in range(first, first + 1000)])

    # Two members per group, each serving only its group.
    def member(index: int) -> subprocess.Popen[bytes]:
        return start_worker(**SETTINGS, groups=GROUPS[index // 2], handle_sleep=HANDLE_SLEEP)

    workers = [member(i) for i in range(2 * len(GROUPS))]
    kill_and_replace(workers, member, lambda: len(ledger(tmp_path)), total * len(GROUPS))
    wait_until(lambda: set(lagging(topics_app, "events").values()) == {0}, 120, "no lag")
    seen: dict[str, Counter[int]] = defaultdict(Counter)
    members: dict[str, set[str]] = defaultdict(set)
    for tag, offset, pid in ledger(tmp_path):
        seen[tag][int(offset)] += 1
        members[tag].add(pid)
    report = []
    for group in GROUPS:
        assert set(seen[group]) == set(range(1, total + 1)), f"{group} missed messages"
        assert len(members[group]) >= 2, f"{group}'s members did not share its messages"
        report.append(f"{group}: {sum(seen[group].values()) - total} duplicates")
    (state,) = [t for t in topics_app.topics() if t.name == "events"]
    assert all(group.dead == 0 and group.cursor == total for group in state.groups)
    print(f"{total} messages x {len(GROUPS)} groups, 5 kills; " + ", ".join(report))


def test_a_stage_killed_before_its_ack_publishes_each_result_once(
    topics_app: offload.App, start_worker: StartWorker, tmp_path: Path
) -> None:
    total = sized(300, 2_000)
    topics_app.publish_many("urls", [f"https://example.com/{i}" for i in range(total)])
    # The process executor: the stage's result crosses from a child to the worker.
    stage = {**SETTINGS, "executor": "process", "groups": "fetchers", "concurrency": 4}
    stage["stage_sleep"] = 0.02
    workers = [start_worker(**stage) for _ in range(2)]
    kill_and_replace(workers, lambda _: start_worker(**stage), lambda: len(ledger(tmp_path)), total)
    wait_until(lambda: lagging(topics_app, "urls") == {"fetchers": 0}, 120, "the stage done")
    results = topics_app.backend.topics.read(MessageReadParams("results", limit=total * 2))
    inputs = Counter(int(m.value["input"]) for m in results)
    assert inputs == Counter(range(1, total + 1)), "each result downstream exactly once"
    assert [m.offset for m in results] == list(range(1, total + 1))
    fetched = Counter(int(offset) for tag, offset, _ in ledger(tmp_path) if tag == "fetch")
    again = sum(fetched.values()) - total
    print(f"{total} inputs, 5 kills: {again} processed again, 0 results doubled or lost")
