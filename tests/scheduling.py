"""How pytest-xdist shares the tests out (`scripts/test` runs `-n 2 --dist loadgroup`).

Most tests wait on a database or a child process more than they compute, so two pytest
processes halve the suite's time on two cores. The tests in `APART` start many processes or
assert wall-clock bounds (a worker resumes within 5 s, a job is killed within 3 s): they
form one group, run one at a time on one xdist worker, as in a serial run, while the other
worker takes the light tests. Being the largest group, it is handed out first.

xdist's own `xdist_group` marker cannot do this here: xdist 3.8 marks a group by rewriting
`item._nodeid`, which pytest 9.2 no longer reads. The controller never collects tests
itself (it only sees node ids), so the group is a list of node-id prefixes, not a marker.
"""

from __future__ import annotations

from xdist.scheduler import LoadGroupScheduling

#: The group's name, as xdist shows it in its scheduling log.
GROUP = "processes"

#: Node-id prefixes (a module, or one test) of the tests that run apart, one at a time.
APART = (
    "tests/batch/test_batch_workers.py::test_max_wait_is_honoured_within_the_tolerance",
    "tests/client/test_retry.py",
    "tests/election/test_leader_election.py",
    "tests/conformance/test_concurrency.py",
    "tests/faults/test_pgbouncer.py",
    "tests/faults/test_postgres_outage.py",
    "tests/flow/test_backpressure_race.py",
    "tests/flow/test_limits_processes.py",
    "tests/flow/test_starvation.py",
    "tests/flow/test_worker_turns.py",
    "tests/hosts/test_hosts.py",
    "tests/runtime/test_cancel_and_context.py",
    "tests/runtime/test_limits.py",
    "tests/runtime/test_torture.py",
    "tests/runtime/test_worker_processes.py",
    "tests/scheduler/test_replicas.py",
    "tests/server/test_events.py",
    "tests/server/test_reliability.py",
    "tests/shaping/test_unique_race.py",
    "tests/shards/test_move_under_load.py",
)


def group_of(nodeid: str) -> str | None:
    """`GROUP` for a test of `APART`, else None."""
    return GROUP if nodeid.startswith(APART) else None


class ApartScheduling(LoadGroupScheduling):
    """`--dist loadgroup`, with every test of `APART` in the group `GROUP`."""

    def _split_scope(self, nodeid: str) -> str:
        return group_of(nodeid) or super()._split_scope(nodeid)
