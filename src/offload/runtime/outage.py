"""Riding out a database outage: retries with jittered backoff, one log line as it starts
and one as it ends, and the line between errors worth waiting out and errors to stop on."""

from __future__ import annotations

import logging
import random
import time

from offload.core.errors import BackendUnavailable, OffloadError, SchemaMismatch

#: Seconds before the first retry, and the most between two: short enough that work resumes
#: within seconds of the database's return, long enough not to hammer a server starting up.
FIRST_DELAY = 0.1
MAX_DELAY = 2.0
#: Seconds of success before an outage counts as over: a full disk still serves reads and
#: small updates, so single successes alternate with failures until space is freed.
SETTLE = 1.0


def passing(exc: BaseException) -> bool:
    """Whether `exc` may pass by waiting (a restart, a cut link, a full disk), as opposed
    to a refused login, a broken file or a schema mismatch, which need a person."""
    return isinstance(exc, BackendUnavailable) and exc.transient


def fatal(exc: BaseException) -> bool:
    """Whether `exc` is a storage error no retry can fix: the process should stop."""
    return isinstance(exc, SchemaMismatch) or (
        isinstance(exc, BackendUnavailable) and not exc.transient
    )


class Outage:
    """The state of one process's outage: since when, whether the database answers again,
    and how long to wait next. One line as it starts, one once it has settled."""

    def __init__(self, who: str, log: logging.Logger) -> None:
        self.who = who
        self.log = log
        self.since: float | None = None
        self._answering_since: float | None = None
        self._delay = FIRST_DELAY

    @property
    def active(self) -> bool:
        """Whether the database is away (not answering since the last failure)."""
        return self.since is not None and self._answering_since is None

    def failed(self, exc: OffloadError) -> float:
        """Record a failed attempt (logged only if it starts the outage); return the seconds
        to wait before the next: doubling up to `MAX_DELAY`, jittered so that many
        processes do not reconnect in step."""
        if self.since is None:
            self.since = time.monotonic()
            self.log.warning(
                "%s: database unavailable, retrying until it is back: %s", self.who, exc
            )
        self._answering_since = None
        delay = self._delay * random.uniform(0.5, 1.0)
        self._delay = min(self._delay * 2, MAX_DELAY)
        return delay

    def recovered(self) -> None:
        """An attempt succeeded; after `SETTLE` seconds of successes, log the outage's end."""
        if self.since is None:
            return
        now = time.monotonic()
        if self._answering_since is None:
            self._answering_since = now
        elif now - self._answering_since >= SETTLE:
            down = self._answering_since - self.since
            self.log.warning("%s: database back after %.1fs, resuming", self.who, down)
            self.since = self._answering_since = None
            self._delay = FIRST_DELAY
