"""The stats area: events rolled up into minute buckets per queue (`offload.core.stats`),
exactly once whatever the number of rollers, and the buckets read back for charts.

A roll-up is one transaction per batch of events: lock the cursor row, read the events
after it (on PostgreSQL only those no open transaction can still add to, as event streams
read them), add their tallies to the buckets, move the cursor past them. The hot paths
(enqueue, claim, finish) write nothing for it: the events they already write are its input.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson

from offload.backends.params import StatsReadParams
from offload.backends.sql.rows import cells
from offload.core.stats import Tally, bucket_of

if TYPE_CHECKING:
    from offload.backends.sql.connector import SqlBackend

#: Events a roll-up takes per transaction: a few milliseconds of work, so that writers
#: (SQLite's single one) never wait long behind it.
ROLL_BATCH = 5000

_COUNTS = ("enqueued", "started", "succeeded", "failed", "dead", "latency_n", "latency_sum")


class SqlStats:
    """`StatsStore` over a backend's `stats.sql`."""

    def __init__(self, db: SqlBackend) -> None:
        self.db = db
        self.q = db.q["stats"]

    def roll(self, limit: int = ROLL_BATCH) -> int:
        """Roll up every event readable now, `limit` per transaction; return how many."""
        total = 0
        while True:
            done = self._roll_batch(limit)
            total += done
            if done < limit:
                return total

    def _roll_batch(self, limit: int) -> int:
        with self.db.tx(relaxed=True) as cur:
            cur.execute(self.q["lock"])
            old_tx, old_position = cur.fetchone()[:2]
            cur.execute(self.q["events"], {"tx": old_tx, "position": old_position, "limit": limit})
            rows = cur.fetchall()
            if not rows:
                return 0
            tallies: dict[tuple[float, str], Tally] = {}
            names = ("kind", "at", "queue", "wait")
            for kind, at, queue, wait in cells(cur, rows, *names):
                if queue is None:  # an application's notify: no queue's work
                    continue
                key = (bucket_of(float(at)), str(queue))
                tally = tallies.get(key)
                if tally is None:
                    tally = tallies[key] = Tally()
                tally.count(kind, None if wait is None else float(wait))
            tx, position = next(cells(cur, rows[-1:], "tx", "position"))
            if tallies:
                self._add(cur, tallies)
            cur.execute(
                self.q["advance"],
                {"tx": tx, "position": position, "old_tx": old_tx, "old_position": old_position},
            )
            if cur.rowcount != 1:  # the lock makes this impossible; never count twice
                raise RuntimeError("the stats cursor moved under a roll-up's lock")
            return len(rows)

    def _add(self, cur: Any, tallies: dict[tuple[float, str], Tally]) -> None:
        """Add tallies to their buckets; histograms are summed here, counts in SQL."""
        with_waits = [key for key, tally in tallies.items() if tally.bins]
        if with_waits:
            cur.execute(self.q["histograms"], {"keys": orjson.dumps(with_waits).decode()})
            for bucket, queue, stored in cells(
                cur, cur.fetchall(), "bucket", "queue", "latency_bins"
            ):
                old = Tally(bins={int(k): int(v) for k, v in orjson.loads(stored).items()})
                tallies[(float(bucket), str(queue))].add(old)
        rows = [
            [bucket, queue, *(getattr(t, name) for name in _COUNTS), t.latency_max, _bins(t)]
            for (bucket, queue), t in tallies.items()
        ]
        cur.execute(self.q["add"], {"rows": orjson.dumps(rows).decode()})

    def read(self, params: StatsReadParams) -> list[tuple[float, Tally]]:
        values = {"since": params.since, "size": params.size, "queue": params.queue}
        slots: dict[int, Tally] = {}
        with self.db.read() as cur:
            cur.execute(self.q["read"], values)
            names = ("slot", *_COUNTS, "latency_max")
            for row in cells(cur, cur.fetchall(), *names):
                slots[int(row[0])] = _tally(row[1:])
            cur.execute(self.q["read_bins"], values)
            for slot, index, n in cells(cur, cur.fetchall(), "slot", "bin", "n"):
                tally = slots.get(int(slot))
                if tally is not None:  # else rolled up between the two reads: next time
                    tally.bins[int(index)] = int(n)
        return [(params.since + slot * params.size, tally) for slot, tally in sorted(slots.items())]

    def prune(self, older_than: float) -> int:
        with self.db.tx(single=True) as cur:
            cur.execute(self.q["prune"], {"age": older_than})
            return int(cur.rowcount)


def _bins(tally: Tally) -> str:
    return orjson.dumps({str(k): v for k, v in sorted(tally.bins.items())}).decode()


def _tally(row: Sequence[Any]) -> Tally:
    enqueued, started, succeeded, failed, dead, n, total, largest = row
    return Tally(
        int(enqueued),
        int(started),
        int(succeeded),
        int(failed),
        int(dead),
        int(n),
        float(total),
        None if largest is None else float(largest),
    )
