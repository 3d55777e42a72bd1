"""RELIABILITY test 22, leader election: five candidate processes; the leader is SIGKILLed
or SIGSTOPped again and again (`ROUNDS`). Pass: no two terms overlap (each process's belief
that it leads, on the machine's monotonic clock, and each term's lease by the database's
clock), terms only grow, and a new leader leads within the lease plus 2 seconds of the
signal. Both backends; the full size (50 rounds) with OFFLOAD_TEST_FULL=1.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import offload
from offload.core.records import Leadership
from offload.runtime.leader import RESCUE
from tests.runtime.conftest import PYTHONPATH
from tests.sizes import sized

NODES = 5
LEASE = 1.0
#: How soon after the signal a new leader must lead (RELIABILITY test 22).
BOUND = LEASE + 2.0
ROUNDS = sized(6, 50)
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Node:
    process: subprocess.Popen[bytes]
    log: Path


@dataclass
class Cluster:
    """The candidate processes of one test, and their logs."""

    url: str
    directory: Path
    nodes: dict[int, Node] = field(default_factory=dict)

    def start(self) -> Node:
        log = self.directory / f"node-{len(self.nodes)}.jsonl"
        env = dict(os.environ, PYTHONPATH=PYTHONPATH)
        command = [sys.executable, "-m", "tests.election.node", self.url, str(log), str(LEASE)]
        process = subprocess.Popen(command, cwd=ROOT, env=env)
        node = self.nodes[process.pid] = Node(process, log)
        return node

    def stop_all(self) -> None:
        for node in self.nodes.values():
            if node.process.poll() is None:
                node.process.kill()  # a stopped process dies of SIGKILL as well
                node.process.wait()


def current(app: offload.App) -> Leadership | None:
    """The lease if it is held now."""
    lease = app.backend.leaders.read(RESCUE)
    return lease if lease is not None and lease.remaining > 0 else None


def wait_for(condition: object, timeout: float, what: str) -> object:
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while True:
        found = condition()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        time.sleep(0.01)


def lines(path: Path) -> list[dict[str, Any]]:
    """A node's log; a last line cut by SIGKILL is left out."""
    out = []
    text = path.read_text() if path.exists() else ""
    for line in text.splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # only the last line of a killed node can be cut
    return out


def renewed(node: Node, after: int) -> bool:
    """Whether the node logged a check that held the lease past byte `after` of its log."""
    with node.log.open() as f:
        f.seek(after)
        found = [json.loads(line) for line in f.read().splitlines() if line.endswith("}")]
    return any(e["kind"] == "check" and e["held"] for e in found)


def test_a_killed_or_stopped_leader_is_replaced_in_time_and_terms_never_overlap(
    migrated_db_url: str, tmp_path: Path
) -> None:
    app = offload.App(migrated_db_url)
    cluster = Cluster(migrated_db_url, tmp_path)
    # (term signalled, signal, monotonic time)
    signals: list[tuple[int, signal.Signals, float]] = []
    try:
        for _ in range(NODES):
            cluster.start()
        for round_ in range(ROUNDS):
            lease = wait_for(lambda: current(app), 30.0, "a leader")
            assert isinstance(lease, Leadership)
            pid = int(lease.holder.split(":")[1])
            node = cluster.nodes[pid]
            # Right after one of its renewals: the worst case, a full lease to wait out
            # (and never inside a transaction, which on SQLite would hold every writer).
            size = node.log.stat().st_size
            wait_for(lambda: renewed(node, size), 10.0, "the leader's next renewal")
            signum = signal.SIGKILL if round_ % 2 == 0 else signal.SIGSTOP
            os.kill(pid, signum)
            signals.append((lease.term, signum, time.monotonic()))
            wait_for(
                lambda: (found := current(app)) is not None and found.term > lease.term,
                BOUND + 10.0,
                "a new leader",
            )
            if signum == signal.SIGSTOP:
                os.kill(pid, signal.SIGCONT)  # back as a candidate: it must step down
            else:
                node.process.wait()
                del cluster.nodes[pid]
                cluster.start()
        time.sleep(LEASE)  # the last resumed node's checks are logged
    finally:
        cluster.stop_all()
        app.close()

    entries = [entry for path in tmp_path.glob("node-*.jsonl") for entry in lines(path)]
    leads = [e for e in entries if e["kind"] == "lead"]
    checks = [e for e in entries if e["kind"] == "check" and e["held"]]
    # Every signal ended a term; a term may also lapse unused (its holder stalled on the
    # loaded machine past its lease before it acted: it never believed it led).
    assert len({int(e["term"]) for e in checks}) >= ROUNDS + 1
    terms = sorted({int(e["term"]) for e in leads})
    # One holder per term, and the beliefs of successive terms apart in time: the last
    # moment a term's holder believed it led (and the end of the lease it counted on) is
    # before the first moment the next term's holder did.
    spans: dict[int, tuple[float, float, float]] = {}
    for term in terms:
        of_term = [e for e in leads if e["term"] == term]
        assert len({e["pid"] for e in of_term}) == 1, f"term {term} had two holders"
        first = min(float(e["at"]) for e in of_term)
        last = max(float(e["at"]) for e in of_term)
        until = max(float(e["until"]) for e in of_term)
        spans[term] = (first, last, until)
    overlaps = [
        (a, b)
        for a, b in itertools.pairwise(terms)
        if not spans[a][1] < spans[b][0] or not spans[a][2] <= spans[b][0]
    ]
    assert overlaps == [], f"overlapping terms: {overlaps} {spans}"
    # By the database's clock: each term began once the previous term's lease had ended.
    by_db: dict[int, tuple[float, float]] = {}
    for e in checks:
        term, since, expires = int(e["term"]), float(e["since"]), float(e["expires"])
        old = by_db.get(term, (since, expires))
        by_db[term] = (since, max(old[1], expires))
    held_terms = sorted(by_db)
    for a, b in itertools.pairwise(held_terms):
        assert by_db[b][0] >= by_db[a][1], f"term {b} began before term {a}'s lease ended"
    # A new leader within the lease plus 2 s of each signal.
    took = []
    for term, signum, at in signals:
        successor = min(t for t in terms if t > term)
        took.append(spans[successor][0] - at)
        name = signal.Signals(signum).name
        assert took[-1] <= BOUND, f"after {name} of term {term}: new leader in {took[-1]:.2f}s"
    print(
        f"{len(signals)} signals, {len(terms)} terms, 0 overlaps; new leader after "
        f"{statistics.median(took):.2f} s median, {max(took):.2f} s at most (lease {LEASE:g} s)"
    )
