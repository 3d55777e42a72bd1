"""Elected maintenance: one process at a time does each maintenance duty.

Rescue of expired leases (`RESCUE`: workers and schedulers stand) and the scheduler's upkeep
(`UPKEEP`: sweep, stats roll-up, pruning) were done by every process on its own timer: with
a hundred hosts, a steady stream of scans that find the same rows. Now each duty has a lease
row (`LeaderStore`): its holder does the duty, the others read the row once per renewal
period and take it, with the next term, once it has expired by the database's clock.

Nothing depends on the leader for correctness. Every duty is idempotent and atomic in the
database (a rescue moves only leases expired by the database's clock; a prune deletes by
age; a roll-up moves a locked cursor; each sweep step is one transaction), so a stale leader
(paused, cut off) that acts once more does no harm; and a dead leader's lease expires, so a
live candidate takes the duty over within the lease plus one check. A holder stops acting
as leader when its own monotonic clock says its lease may have ended (counted from before
the renewal was sent, so never later than the database's expiry), before it even learns
that another took it; and its next renewal, which names its term, fails once one did.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from offload.backends.base import Backend
from offload.backends.params import ElectParams, ResignParams
from offload.core.errors import ElectionSettingInvalid, OffloadError
from offload.core.records import Leadership

#: The duty of rescuing expired leases (workers and schedulers stand for it).
RESCUE = "rescue"
#: The scheduler's upkeep: sweep, stats roll-up, pruning (schedulers stand for it).
UPKEEP = "upkeep"
#: Every duty, in the order `App.duties` lists them.
DUTIES = (RESCUE, UPKEEP)

#: Seconds a maintenance lease lasts by default: a dead leader is replaced within it, as a
#: dead worker's jobs are rescued after their lease (the worker's default, 20 s).
DEFAULT_LEADER_LEASE = 20.0
#: The shortest lease accepted: renewed every third of it, a renewal's round trip under
#: load must not eat it.
MIN_LEADER_LEASE = 0.5
#: The longest: a dead leader's duty waits this long for a successor.
MAX_LEADER_LEASE = 3600.0
#: Duty steps failing in a row after which the holder gives the duty up: one failure may be
#: a blip the next turn gets past; two say this process cannot do the duty.
STEP_DOWN_AFTER = 2
#: Seconds a candidate waits past the expiry it read before looking again (the holder's
#: renewal may be in flight).
_PAST_EXPIRY = 0.01


def check_election(elect: object, leader_lease: object) -> float:
    """The lease in seconds, or ElectionSettingInvalid naming the bad setting."""
    if not isinstance(elect, bool):
        raise ElectionSettingInvalid("elect", elect, "True or False")
    if isinstance(leader_lease, bool) or not isinstance(leader_lease, int | float):
        raise ElectionSettingInvalid("leader_lease", leader_lease, "a number of seconds")
    if not math.isfinite(leader_lease) or not (
        MIN_LEADER_LEASE <= leader_lease <= MAX_LEADER_LEASE
    ):
        reason = f"between {MIN_LEADER_LEASE:g} and {MAX_LEADER_LEASE:g} seconds"
        raise ElectionSettingInvalid("leader_lease", leader_lease, reason)
    return float(leader_lease)


@dataclass(frozen=True, slots=True)
class Held:
    """What an elector saw as it checked its lease: whether it holds it, and the lease as
    the database returned it (its term, holder and times)."""

    held: bool
    lease: Leadership
    #: Monotonic time the statement was sent.
    sent: float


class Elector:
    """Holds, or stands for, one maintenance lease (`name`) for `holder`.

    `poll` (when `due`) renews the lease held, or reads it and takes it once expired: one
    statement per renewal period, whichever. `leading` says, without the database, whether
    the lease is held now by this process's own clock.
    """

    def __init__(
        self,
        backend: Backend,
        name: str,
        holder: str,
        lease: float,
        *,
        observer: Callable[[Held], None] | None = None,
        log: logging.Logger | None = None,
    ) -> None:
        self.backend = backend
        #: Where a term taken or lost is said: the worker's or the scheduler's logger.
        self.log = log or logging.getLogger("offload.leader")
        self.name = name
        self.holder = holder
        self.lease = lease
        #: Seconds between renewals: a third of the lease, so that two may fail in a row.
        self.renew_every = lease / 3
        #: Told of every check's result (tests, benchmarks); None: nobody.
        self.observer = observer
        #: The term held, None when not holding.
        self.term: int | None = None
        #: Monotonic time until which the lease is held (0: not held).
        self.until = 0.0
        #: Monotonic time of the next check.
        self.due = 0.0
        #: The duty's steps that failed in a row while held (`failed`, `succeeded`).
        self.failures = 0

    def leading(self) -> bool:
        """Whether this process holds the lease now, by its own monotonic clock."""
        return self.term is not None and time.monotonic() < self.until

    def poll(self) -> bool:
        """Renew the lease held, or look whether it is free and take it; return whether
        this check began a term (the duty may have waited: do it now)."""
        sent = time.monotonic()
        before = self.term
        leases = self.backend.leaders
        found: Leadership | None
        if before is not None:
            found = leases.elect(ElectParams(self.name, self.holder, before, self.lease))
        else:
            found = leases.read(self.name)  # a read: no lock, no write, while it is held
            if found is None or found.remaining <= 0:
                found = leases.elect(ElectParams(self.name, self.holder, None, self.lease))
        held = found.held_by(self.holder)
        if held:
            self.term = found.term
            self.until = sent + found.remaining
            self.due = sent + self.renew_every
        else:
            self.term = None
            self.until = 0.0
            self.due = sent + max(found.remaining, 0.0) + _PAST_EXPIRY
        if self.observer is not None:
            self.observer(Held(held, found, sent))
        if held and found.term != before:
            self.log.info("%s: took the %s duty, term %d", self.holder, self.name, found.term)
            return True
        if before is not None and not held:
            self.log.warning(
                "%s: lost the %s duty (term %d) to %s, term %d",
                self.holder,
                self.name,
                before,
                found.holder,
                found.term,
            )
        return False

    def resign(self) -> None:
        """Give the lease up now (at a clean stop): a candidate takes it at its next check
        instead of waiting for it to expire."""
        if self.term is not None:
            self.backend.leaders.resign(ResignParams(self.name, self.holder, self.term))
            self.term = None
            self.until = 0.0

    def succeeded(self) -> None:
        """The duty's step succeeded: the failures in a row start again from none."""
        self.failures = 0

    def failed(self) -> None:
        """The duty's step failed: after `STEP_DOWN_AFTER` in a row, give the duty up
        (`step_down`), since this process holds it without doing it."""
        self.failures += 1
        if self.failures >= STEP_DOWN_AFTER:
            self.failures = 0
            self.step_down()

    def step_down(self) -> None:
        """Give the lease up after the duty failed, and stand again only once it would have
        expired: holding a duty is tied to doing it, so a holder that reaches the lease row
        but not what the duty needs (a shard, say) lets another candidate take it rather
        than renew it forever. The resignation is best effort: if it fails, the lease
        expires by itself, since it is not renewed."""
        term = self.term
        self.due = time.monotonic() + self.lease + _PAST_EXPIRY
        try:
            self.resign()
        except OffloadError as exc:
            self.log.warning(
                "%s: could not give up the %s duty (it expires): %s", self.holder, self.name, exc
            )
        self.term = None
        self.until = 0.0
        if term is not None:
            self.log.warning(
                "%s: gave up the %s duty (term %d): it failed", self.holder, self.name, term
            )
