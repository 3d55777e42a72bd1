"""The topics area: the log (publish, read), groups (subscribe, replay, list) and the pump
that hands a group's next messages to its queue as jobs, over a backend's `topics.sql`.

Offsets are given under the topic row's lock, held to the publish's commit (schema 12), so
they are dense and in commit order: a cursor never passes an offset that may still appear.
A pump runs under its group row's lock: it reads the messages after the cursor, inserts
them as jobs of the group's queue (`offload.backends.sql.jobs`) and moves the cursor, in
one transaction; leases, retries, backoff and dead jobs are then the jobs' own. It follows
the queue's pause and max_depth, and passes over messages published before a group's
start time (schema 13).
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson

from offload.backends.params import (
    MessageReadParams,
    PublishParams,
    PumpParams,
    ReplayParams,
    RetentionParams,
    SubscribeParams,
)
from offload.backends.sql.rows import Columns, cells
from offload.core.errors import GroupNotFound, OffsetOutOfRange
from offload.core.job import Payload
from offload.core.topics import GroupState, Message, Start, TopicState, group_queue

if TYPE_CHECKING:
    from offload.backends.sql.connector import SqlBackend


class SqlTopics:
    """`TopicStore` over a backend's `topics.sql`."""

    def __init__(self, db: SqlBackend) -> None:
        self.db = db
        self.q = db.q["topics"]

    # -- the log ------------------------------------------------------------------------

    def publish(self, params: PublishParams) -> list[int]:
        count = len(params.messages)
        if not count:
            return []
        if params.conn is None and "publish" in self.q.text:  # one statement (PostgreSQL)
            values = {"topic": params.topic, "n": count, "messages": _pairs(params.messages)}
            with self.db.tx(single=True) as cur:
                cur.execute(self.q["publish"], values)
                last = int(cur.fetchone()[0])
            return list(range(last - count + 1, last + 1))
        with self.db.tx(params.conn) as cur:
            return self.append(cur, params.topic, params.messages)

    def append(self, cur: Any, topic: str, messages: Sequence[tuple[str | None, str]]) -> list[int]:
        """Publish (key, value JSON text) pairs in `cur`'s transaction (a publish, or the
        outcome of a pipeline stage); return their offsets. The topic row stays locked
        until that transaction ends."""
        count = len(messages)
        cur.execute(self.q["advance"], {"topic": topic, "n": count})
        last = int(cur.fetchone()[0])
        first = last - count + 1
        values = {"topic": topic, "first": first, "messages": _pairs(messages)}
        cur.execute(self.q["append"], values)
        cur.execute(self.q["names"], {"topic": topic})
        groups = [str(row[0]) for row in cur.fetchall()]
        if groups:  # their members pump at once, not at their next poll
            self.db.wake(cur, [group_queue(topic, group) for group in groups])
        return list(range(first, last + 1))

    def read(self, params: MessageReadParams) -> builtins.list[Message]:
        values = {"topic": params.topic, "cursor": params.after, "limit": params.limit}
        with self.db.read() as cur:
            cur.execute(self.q["after"], values)
            rows = cur.fetchall()
            names = ("position", "key", "value", "published_at")
            return [self._message(params.topic, *row) for row in cells(cur, rows, *names)]

    def _message(self, topic: str, position: Any, key: Any, value: Any, at: Any) -> Message:
        return Message(topic, int(position), key, orjson.loads(value), self.db.time(at))

    # -- groups -------------------------------------------------------------------------

    def subscribe(self, params: SubscribeParams) -> None:
        topic, group = params.topic, params.group
        with self.db.tx() as cur:
            cur.execute(self.q["ensure"], {"topic": topic})
            values = {"topic": topic, "group": group, "ordered": params.ordered_by_key}
            cur.execute(self.q["declare_group"], values)
            cur.execute(self.q["group"], values)
            if cur.fetchone() is not None:
                return
            self._floor_lock(cur, topic)  # no group row held: there is none yet
            cursor = self._place(cur, topic, params.start)
            at = self._start_at(params.start)
            cur.execute(self.q["insert_group"], {**values, "cursor": cursor, "start_at": at})

    def replay(self, params: ReplayParams) -> int:
        start: Start
        if params.offset is not None and params.at is None:
            start = params.offset
        elif params.at is not None and params.offset is None:
            start = params.at
        else:
            raise ValueError("replay takes an offset or a time, one of the two")
        topic, group = params.topic, params.group
        with self.db.tx() as cur:
            self._floor_lock(cur, topic)
            cur.execute(self.q["group"], {"topic": topic, "group": group})
            if cur.fetchone() is None:
                cur.execute(self.q["names"], {"topic": topic})
                raise GroupNotFound(topic, group, [str(row[0]) for row in cur.fetchall()])
            cursor = self._place(cur, topic, start)
            values = {"topic": topic, "group": group, "cursor": cursor}
            cur.execute(self.q["restart"], {**values, "start_at": self._start_at(start)})
        return cursor

    def _start_at(self, start: Start) -> Any:
        """The time a group's messages start at, as stored (None: a start by offset)."""
        return self.db.time_param(start) if isinstance(start, datetime) else None

    def _floor_lock(self, cur: Any, topic: str) -> None:
        """Take turns with prunes of `topic` to the end of `cur`'s transaction. Taken before
        any group row (a prune takes it, then the rows of the groups it moves)."""
        cur.execute(self.q["floor_lock"], {"topic": topic})
        cur.fetchall()

    def _place(self, cur: Any, topic: str, start: Start) -> int:
        """The cursor that `start` names on `topic`, read in `cur`'s transaction: an
        offset below the oldest retained message means just before it. The transaction
        holds `_floor_lock`, so the floor it reads is not being moved by a prune."""
        cur.execute(self.q["topic"], {"topic": topic})
        row = cur.fetchone()
        last = 0 if row is None else int(row[0])
        if start == "latest":
            return last
        if isinstance(start, int) and start > last:
            raise OffsetOutOfRange(topic, start, last)
        if isinstance(start, datetime):
            cur.execute(self.q["first_at"], {"topic": topic, "at": self.db.time_param(start)})
        else:  # earliest, or an offset: not below what is retained (lag counts from it)
            cur.execute(self.q["first"], {"topic": topic})
        first = cur.fetchone()[0]
        floor = last if first is None else int(first) - 1
        return max(start, floor) if isinstance(start, int) else floor

    def pump(self, params: PumpParams) -> int:
        topic, group, spec = params.topic, params.group, params.spec
        values = {"topic": topic, "group": group}
        with self.db.tx(relaxed=True) as cur:  # lost in a crash: the cursor with the jobs
            cur.execute(self.q["pump_group"], {**values, "queue": spec.queue})
            row = cur.fetchone()
            if row is None:
                raise GroupNotFound(topic, group)
            cursor, ordered, paused, bound = int(row[0]), bool(row[1]), bool(row[2]), row[3]
            start_at = None if row[4] is None else self.db.time(row[4])
            if paused:  # the messages wait in the log, not as jobs (lag shows them)
                return 0
            limit = params.limit
            if bound is not None:
                limit = min(limit, self._room(cur, spec.queue, int(bound)))
                if limit <= 0:
                    return 0
            cur.execute(self.q["after"], {**values, "cursor": cursor, "limit": limit})
            rows = cur.fetchall()
            if not rows:
                return 0
            c = Columns.of(cur)
            busy = self._busy(cur, spec.queue) if ordered else None
            handed: builtins.list[str] = []  # delivery arguments
            passed = cursor
            for row in rows:  # in offset order, up to the first whose key is held
                at = self.db.time(row[c["published_at"]])
                if start_at is None or at >= start_at:
                    key = row[c["key"]]
                    if busy is not None and key is not None:
                        if key in busy:
                            break
                        busy.add(key)
                    handed.append(_delivery(topic, row, c, at))
                # else published before the group's start time: passed over, not its own
                passed = int(row[c["position"]])
            if passed == cursor:
                return 0
            if handed:
                self.db.jobs.insert_in(cur, spec, [Payload(args=args) for args in handed])
            cur.execute(self.q["move"], {**values, "cursor": passed})
        return len(handed)

    def _room(self, cur: Any, queue: str, bound: int) -> int:
        """Deliveries `queue` may still take under its max_depth `bound`, counted as an
        enqueue's admission counts (under the policy's lock, in `cur`'s transaction): so
        the insert that follows is admitted, never refused into the worker's claim."""
        jobs = self.db.q["jobs"]
        cur.execute(jobs["admission_lock"], {"queue": queue})
        cur.fetchall()
        cur.execute(jobs["admission_depth"], {"queue": queue, "cap": bound})
        return bound - int(cur.fetchone()[0])

    def _busy(self, cur: Any, queue: str) -> set[str]:
        """The keys an ordered group's deliveries not yet over hold: the pump hands out no
        message of these keys, and stops at the first (later ones of the key wait behind
        it). Read under the group's lock, so pumps of one group take turns deciding."""
        cur.execute(self.q["busy_keys"], {"queue": queue})
        return {str(row[0]) for row in cur.fetchall()}

    def list(self) -> builtins.list[TopicState]:
        with self.db.read() as cur:
            cur.execute(self.q["groups"])
            rows = cur.fetchall()
            names: tuple[str, ...] = ("topic", "name", "cursor", "ordered_by_key", "skipped",
                                      "last_offset", "unfinished", "dead")  # fmt: skip
            groups: dict[str, builtins.list[GroupState]] = {}
            for topic, name, cursor, ordered, skipped, last, unfinished, dead in cells(
                cur, rows, *names
            ):
                lag = int(last) - int(cursor) + int(unfinished)
                state = GroupState(
                    topic, name, int(cursor), bool(ordered), lag, int(dead), int(skipped)
                )
                groups.setdefault(topic, []).append(state)
            cur.execute(self.q["topics"])
            rows = cur.fetchall()
            names = ("name", "messages", "first", "last_offset", "retention_seconds",
                     "retention_messages")  # fmt: skip
            return [
                TopicState(
                    name,
                    int(count),
                    int(first),
                    int(last),
                    None if seconds is None else float(seconds),
                    None if most is None else int(most),
                    groups.get(name, []),
                )
                for name, count, first, last, seconds, most in cells(cur, rows, *names)
            ]

    # -- retention ----------------------------------------------------------------------

    def retain(self, params: RetentionParams) -> None:
        values = {"topic": params.topic, "seconds": params.seconds, "most": params.max_messages}
        with self.db.tx(single=True) as cur:
            cur.execute(self.q["retain"], values)

    def prune(self, now: datetime | None = None) -> int:
        with self.db.read() as cur:
            cur.execute(self.q["retained"])
            names = ("name", "last_offset", "retention_seconds", "retention_messages")
            topics = list(cells(cur, cur.fetchall(), *names))
        removed = 0
        for topic, last, seconds, most in topics:
            with self.db.tx() as cur:  # one topic at a time: short transactions
                self._floor_lock(cur, topic)
                floor = 0 if most is None else int(last) - int(most)
                if seconds is not None:
                    at = self.db.time_param(now)
                    cur.execute(
                        self.q["first_kept"], {"topic": topic, "seconds": seconds, "now": at}
                    )
                    kept = cur.fetchone()[0]
                    floor = max(floor, int(last) if kept is None else int(kept) - 1)
                if floor <= 0:
                    continue
                values = {"topic": topic, "floor": floor}
                cur.execute(self.q["skip"], values)
                cur.execute(self.q["prune"], values)
                removed += int(cur.rowcount)
        return removed


def _pairs(messages: Sequence[tuple[str | None, str]]) -> str:
    """(key, value JSON text) pairs as the `append` statements take them: each value a
    string, as PostgreSQL's json cannot take a \\u0000 escape apart and a string holds one."""
    return orjson.dumps([[key, value] for key, value in messages]).decode()


def _delivery(topic: str, row: Sequence[Any], c: Columns, at: datetime) -> str:
    """A delivery job's arguments: the message (`Message.from_json` reads it back)."""
    message = {
        "topic": topic,
        "offset": int(row[c["position"]]),
        "key": row[c["key"]],
        "published_at": at.isoformat(),
        "value_json": row[c["value"]],
    }
    return orjson.dumps([message]).decode()
