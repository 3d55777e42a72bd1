"""The combiners of group commit (`offload.backends.group`) with stand-in inserts: who
writes which group, and that every caller gets exactly its own outcome and none waits
forever, whatever fails."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence

import pytest

from offload.backends.group import GROUP_LIMIT, LoopGroups, ThreadGroups
from offload.core.errors import BackendError, OffloadError, OutcomeUnknown, ValidationError


class Store:
    """Stand-in inserts: `alone` and `together` record their calls; a param below 0 is
    refused (its own error); `fail_together` makes the whole group's transaction fail."""

    def __init__(self, slow: float = 0.0) -> None:
        self.alone_calls: list[int] = []
        self.groups: list[list[int]] = []
        self.fail_together: OffloadError | None = None
        self.slow = slow
        self.lock = threading.Lock()

    def alone(self, n: int) -> int:
        time.sleep(self.slow)
        with self.lock:
            self.alone_calls.append(n)
        if n < 0:
            raise ValidationError(f"refused {n}")
        return n * 10

    def together(self, group: Sequence[int]) -> list[int | OffloadError]:
        time.sleep(self.slow)
        with self.lock:
            self.groups.append(list(group))
        if self.fail_together is not None:
            raise self.fail_together
        return [ValidationError(f"refused {n}") if n < 0 else n * 10 for n in group]


def run_threads(groups: ThreadGroups[int, int], ns: list[int]) -> dict[int, object]:
    outcomes: dict[int, object] = {}
    lock = threading.Lock()

    def call(n: int) -> None:
        try:
            result: object = groups.submit(n)
        except Exception as exc:
            result = exc
        with lock:
            outcomes[n] = result

    threads = [threading.Thread(target=call, args=(n,)) for n in ns]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
        assert not thread.is_alive(), "a caller waits forever"
    return outcomes


def test_a_lone_caller_runs_alone_and_is_never_grouped() -> None:
    store = Store()
    groups = ThreadGroups(store.alone, store.together)
    assert [groups.submit(n) for n in range(5)] == [0, 10, 20, 30, 40]
    assert store.alone_calls == [0, 1, 2, 3, 4]
    assert store.groups == []


def test_callers_arriving_during_a_write_share_the_next_and_get_their_own_outcome() -> None:
    store = Store(slow=0.05)
    groups = ThreadGroups(store.alone, store.together)
    ns = [*range(1, 40), -7]
    outcomes = run_threads(groups, ns)
    for n in ns:
        if n < 0:
            assert isinstance(outcomes[n], ValidationError), outcomes[n]
        else:
            assert outcomes[n] == n * 10
    written = store.alone_calls + [n for group in store.groups for n in group]
    assert sorted(written) == sorted(ns), "each caller written exactly once"
    assert store.groups, "callers that waited were grouped"
    assert len(store.alone_calls) + len(store.groups) < len(ns) / 2


def test_a_caller_whose_row_is_committed_returns_then_with_its_own_outcome() -> None:
    """The thread that wrote alone returns once its own commit is done: it neither writes
    the callers that arrived meanwhile (their write may stall, or fail) nor gets their
    group's error, which reaches only them."""
    store = Store(slow=0.3)
    store.fail_together = OutcomeUnknown("the connection broke during COMMIT", "enqueue")
    groups = ThreadGroups(store.alone, store.together)
    outcomes: dict[int, object] = {}
    returned: dict[int, float] = {}

    def call(n: int) -> None:
        try:
            outcomes[n] = groups.submit(n)
        except Exception as exc:
            outcomes[n] = exc
        returned[n] = time.monotonic()

    threads = {n: threading.Thread(target=call, args=(n,)) for n in range(3)}
    started = time.monotonic()
    threads[0].start()  # writes alone, 0 to 0.3 s
    time.sleep(0.1)
    threads[1].start()
    threads[2].start()  # 1 and 2 wait: written together after 0.3 s, failing at 0.6 s
    for thread in threads.values():
        thread.join(5)
        assert not thread.is_alive(), "a caller waits forever"
    assert outcomes[0] == 0
    assert all(isinstance(outcomes[n], OutcomeUnknown) for n in (1, 2))
    assert returned[0] - started < min(returned[1], returned[2]) - started - 0.15


def test_a_group_failing_as_a_whole_runs_each_caller_alone() -> None:
    store = Store(slow=0.02)
    store.fail_together = BackendError("disk I/O error")
    groups = ThreadGroups(store.alone, store.together)
    ns = [*range(1, 20), -3]
    outcomes = run_threads(groups, ns)
    assert {n: outcomes[n] for n in ns if n > 0} == {n: n * 10 for n in ns if n > 0}
    assert isinstance(outcomes[-3], ValidationError)
    assert store.groups, "some callers were grouped first"
    assert sorted(store.alone_calls) == sorted(ns), "then every one ran alone, once"


def test_an_unknown_outcome_of_a_group_reaches_each_of_its_callers_unretried() -> None:
    store = Store(slow=0.05)
    store.fail_together = OutcomeUnknown("the connection broke during COMMIT", "enqueue")
    groups = ThreadGroups(store.alone, store.together)
    outcomes = run_threads(groups, list(range(1, 20)))
    grouped = {n for group in store.groups for n in group}
    assert grouped, "some callers were grouped"
    for n in grouped:
        assert isinstance(outcomes[n], OutcomeUnknown), "a resent insert could double it"
    assert not grouped & set(store.alone_calls)


def test_no_group_holds_more_than_its_limit() -> None:
    store = Store(slow=0.2)
    groups = ThreadGroups(store.alone, store.together)
    outcomes = run_threads(groups, list(range(1, GROUP_LIMIT + 60)))
    assert all(outcomes[n] == n * 10 for n in outcomes)
    assert max(len(group) for group in store.groups) <= GROUP_LIMIT


def test_an_unexpected_error_in_a_group_releases_every_caller() -> None:
    store = Store(slow=0.05)
    groups = ThreadGroups(store.alone, store.together)

    def broken(group: Sequence[int]) -> list[int | OffloadError]:
        raise RuntimeError("a bug")

    groups._together = broken
    outcomes = run_threads(groups, list(range(1, 20)))
    assert any(isinstance(o, RuntimeError) for o in outcomes.values())
    assert all(isinstance(o, RuntimeError | int) for o in outcomes.values())


def test_coroutines_of_one_loop_share_writes_and_get_their_own_outcomes() -> None:
    store = Store(slow=0.02)
    groups = LoopGroups(store.alone, store.together, lambda n: True)

    async def main() -> list[object]:
        return await asyncio.gather(
            *(groups.submit(n) for n in [*range(1, 300), -5]), return_exceptions=True
        )

    outcomes = asyncio.run(main())
    assert outcomes[:-1] == [n * 10 for n in range(1, 300)]
    assert isinstance(outcomes[-1], ValidationError)
    assert len(store.alone_calls) == 1, "only the first ran alone"
    assert 2 <= len(store.groups) <= 3
    assert max(len(g) for g in store.groups) <= GROUP_LIMIT


def test_a_lone_coroutine_runs_alone() -> None:
    store = Store()
    groups = LoopGroups(store.alone, store.together, lambda n: True)

    async def main() -> list[int]:
        return [await groups.submit(n) for n in range(3)]

    assert asyncio.run(main()) == [0, 10, 20]
    assert store.groups == []


@pytest.mark.parametrize("error", [BackendError("gone"), OutcomeUnknown("unknown", "enqueue")])
def test_a_coroutine_group_failing_as_a_whole(error: OffloadError) -> None:
    store = Store(slow=0.02)
    store.fail_together = error
    groups = LoopGroups(store.alone, store.together, lambda n: True)

    async def main() -> list[object]:
        return await asyncio.gather(
            *(groups.submit(n) for n in range(1, 30)), return_exceptions=True
        )

    outcomes = asyncio.run(main())
    grouped = [n for group in store.groups for n in group]
    assert grouped
    for n in grouped:
        if isinstance(error, OutcomeUnknown):
            assert isinstance(outcomes[n - 1], OutcomeUnknown)
        else:
            assert outcomes[n - 1] == n * 10  # run again alone


def test_a_waiting_caller_interrupted_by_a_signal_leaves_the_line_and_nobody_hangs() -> None:
    import signal

    store = Store(slow=0.4)
    groups = ThreadGroups(store.alone, store.together)
    first = threading.Thread(target=groups.submit, args=(1,))
    first.start()  # writes alone for 0.4 s
    time.sleep(0.05)
    late: list[int] = []
    after = threading.Thread(target=lambda: late.append(groups.submit(3)))

    def interrupt(signum: int, frame: object) -> None:
        after.start()  # queues behind the interrupted caller
        time.sleep(0.05)
        raise TimeoutError("interrupted while waiting")

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 0.1)
    try:
        with pytest.raises(TimeoutError):
            groups.submit(2)  # waits in line behind the write, then the signal fires
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    first.join(5)
    after.join(5)
    assert not after.is_alive(), "a caller queued after the interrupted one waits forever"
    assert late == [30]
    written = store.alone_calls + [n for group in store.groups for n in group]
    assert sorted(written) == [1, 3], "the interrupted caller's insert was never written"
    assert groups.submit(4) == 40  # and the combiner is idle again


def test_a_caller_interrupted_while_its_group_is_written_is_skipped_by_the_wake_ups() -> None:
    import signal

    store = Store(slow=0.5)
    groups = ThreadGroups(store.alone, store.together)
    outcomes: dict[int, object] = {}

    def call(n: int) -> None:
        outcomes[n] = groups.submit(n)

    first = threading.Thread(target=call, args=(1,))
    first.start()  # writes alone until 0.5 s
    time.sleep(0.05)
    leader = threading.Thread(target=call, args=(2,))
    leader.start()  # first in line: writes the next group, 0.5 s to 1 s
    time.sleep(0.05)
    later = [threading.Thread(target=call, args=(n,)) for n in (4, 5)]

    def interrupt(signum: int, frame: object) -> None:
        raise TimeoutError("interrupted while its group was written")

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 0.6)  # at 0.7 s: during the group's write
    try:

        def queue_behind() -> None:
            time.sleep(0.05)  # after this caller, in the same group
            for thread in later:
                thread.start()

        threading.Thread(target=queue_behind).start()
        with pytest.raises(TimeoutError):
            groups.submit(3)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    for thread in [first, leader, *later]:
        thread.join(5)
        assert not thread.is_alive(), "a caller after the interrupted one waits forever"
    assert store.groups == [[2, 3, 4, 5]], "its insert was being written: it stays written"
    assert outcomes == {1: 10, 2: 20, 4: 40, 5: 50}
    assert groups.submit(6) == 60  # and the combiner is idle again


def test_a_cancelled_coroutine_still_waiting_is_never_written() -> None:
    store = Store(slow=0.3)
    groups = LoopGroups(store.alone, store.together, lambda n: True)

    async def main() -> object:
        writing = asyncio.ensure_future(groups.submit(1))
        await asyncio.sleep(0.05)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(groups.submit(2), 0.05)
        return await writing

    assert asyncio.run(main()) == 10
    written = store.alone_calls + [n for group in store.groups for n in group]
    assert written == [1]


def test_an_insert_that_may_not_be_grouped_runs_alone_beside_a_group() -> None:
    store = Store(slow=0.1)
    groups = LoopGroups(store.alone, store.together, lambda n: n != 5)

    async def main() -> list[int]:
        return list(await asyncio.gather(*(groups.submit(n) for n in range(1, 9))))

    assert asyncio.run(main()) == [n * 10 for n in range(1, 9)]
    assert 5 in store.alone_calls
    assert all(5 not in group for group in store.groups)
