"""The leaders area: one holder per lease at a time, by the database's clock, each new
holding under a greater term (the fencing token of elected maintenance)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import offload
from offload.backends.base import Backend
from offload.backends.params import ElectParams, ResignParams
from offload.core.records import Leadership
from tests.conformance.helpers import wait_db_time_past

TTL = 0.5


def elect(backend: Backend, holder: str, term: int | None, ttl: float = TTL) -> Leadership:
    return backend.leaders.elect(ElectParams("rescue", holder, term, ttl))


def test_the_first_candidate_takes_term_one_and_the_others_see_it(backend: Backend) -> None:
    assert backend.leaders.read("rescue") is None
    before = backend.now()
    mine = elect(backend, "a", None, 60.0)
    assert (mine.holder, mine.term, mine.held_by("a")) == ("a", 1, True)
    assert before <= mine.since <= mine.expires_at
    assert 59.0 < mine.remaining <= 60.0
    theirs = elect(backend, "b", None, 60.0)  # held and live: b does not get it
    assert (theirs.holder, theirs.term, theirs.held_by("b")) == ("a", 1, False)
    assert theirs.expires_at == mine.expires_at  # nor did b's try extend a's lease
    read = backend.leaders.read("rescue")
    assert read is not None
    assert (read.holder, read.term, read.since, read.expires_at) == (
        "a",
        1,
        mine.since,
        mine.expires_at,
    )
    assert backend.leaders.read("upkeep") is None  # each duty has a lease of its own


def test_a_renewal_keeps_the_term_and_moves_the_expiry(backend: Backend) -> None:
    first = elect(backend, "a", None, 30.0)
    renewed = elect(backend, "a", first.term, 60.0)
    assert (renewed.holder, renewed.term, renewed.since) == ("a", 1, first.since)
    assert renewed.expires_at > first.expires_at


def test_an_expired_lease_goes_to_the_next_candidate_with_the_next_term(
    backend: Backend,
) -> None:
    first = elect(backend, "a", None)
    wait_db_time_past(backend, first.expires_at)
    taken = elect(backend, "b", None)
    assert (taken.holder, taken.term, taken.held_by("b")) == ("b", 2, True)
    assert taken.since >= first.expires_at  # the terms do not overlap by the database's clock
    # The old holder's renewal names its term: refused, and it learns who holds it now.
    stale = elect(backend, "a", first.term)
    assert (stale.holder, stale.term, stale.held_by("a")) == ("b", 2, False)


def test_a_holder_whose_lease_lapsed_gets_a_new_term(backend: Backend) -> None:
    """Even with nobody else taking it: the gap ended the term (it may have been taken and
    lost meanwhile, for all the holder knows)."""
    first = elect(backend, "a", None)
    wait_db_time_past(backend, first.expires_at)
    again = elect(backend, "a", first.term)
    assert (again.holder, again.term, again.held_by("a")) == ("a", 2, True)


def test_a_restarted_holder_takes_its_own_lease_with_a_new_term(backend: Backend) -> None:
    elect(backend, "a", None, 60.0)
    again = elect(backend, "a", None, 60.0)  # same id, without knowing its term
    assert (again.holder, again.term, again.held_by("a")) == ("a", 2, True)


def test_resign_frees_the_lease_at_once(backend: Backend) -> None:
    first = elect(backend, "a", None, 60.0)
    assert backend.leaders.resign(ResignParams("rescue", "b", first.term)) is False
    assert backend.leaders.resign(ResignParams("rescue", "a", first.term + 1)) is False
    assert elect(backend, "b", None, 60.0).holder == "a"  # still a's
    assert backend.leaders.resign(ResignParams("rescue", "a", first.term)) is True
    assert backend.leaders.resign(ResignParams("rescue", "a", first.term)) is False
    taken = elect(backend, "b", None, 60.0)
    assert (taken.holder, taken.term) == ("b", 2)


def test_candidates_racing_for_a_free_lease_get_one_holder_per_term(db_url: str) -> None:
    """Eight processes' worth of backends at once, over rounds of expiring leases: each
    round exactly one takes it, and the terms count up by one."""
    apps = [offload.App(db_url) for _ in range(8)]
    apps[0].migrate()
    barrier = threading.Barrier(len(apps))

    def stand(index: int) -> tuple[str, Leadership]:
        barrier.wait()
        params = ElectParams("upkeep", f"c{index}", None, 0.3)
        return f"c{index}", apps[index].backend.leaders.elect(params)

    try:
        with ThreadPoolExecutor(len(apps)) as pool:
            for round_ in range(1, 6):
                seen = list(pool.map(stand, range(len(apps))))
                winners = [me for me, lease in seen if lease.held_by(me)]
                assert len(winners) == 1, seen
                # Every candidate saw the winner's lease, in this round's term.
                assert {(lease.holder, lease.term) for _, lease in seen} == {(winners[0], round_)}
                wait_db_time_past(apps[0].backend, seen[0][1].expires_at)
    finally:
        for app in apps:
            app.close()
