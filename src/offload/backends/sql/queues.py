"""The queues area: queue policies (declared in code, changed at run time, paused) and the
limits tasks declare, one row each."""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from offload.backends.params import QueueChangeParams
from offload.backends.sql.rows import Columns
from offload.core.errors import ValidationError
from offload.core.flow import DEFAULT_AGING, QueuePolicy, Rate, TaskLimits
from offload.core.records import QueueFigures, QueueState
from offload.core.topics import check_group_policy

if TYPE_CHECKING:
    from offload.backends.sql.connector import SqlBackend


class SqlQueues:
    """`QueueStore` over a backend's `queues.sql`."""

    def __init__(self, db: SqlBackend) -> None:
        self.db = db
        self.q = db.q["queues"]

    def declare(
        self, policies: Mapping[str, QueuePolicy], limits: Mapping[str, TaskLimits | None]
    ) -> None:
        with self.db.tx() as cur:
            for name, policy in policies.items():
                values = _policy_params(name, policy)
                values["declared"] = orjson.dumps(policy.to_json()).decode()
                self._write(cur, "declare", values)
            for task, limit in limits.items():
                if limit is None:
                    cur.execute(self.q["limits_delete"], {"task": task})
                    continue
                rate = limit.rate
                cur.execute(
                    self.q["limits_upsert"],
                    {
                        "task": task,
                        "concurrency": limit.concurrency,
                        "rate_count": None if rate is None else rate.count,
                        "rate_period": None if rate is None else rate.period,
                        "keyed": limit.keyed,
                    },
                )
        self.db.admission.forget()

    def set(self, name: str, policy: QueuePolicy) -> None:
        with self.db.tx() as cur:
            self._write(cur, "set", _policy_params(name, policy))
        self.db.admission.forget()

    def change(self, params: QueueChangeParams) -> QueuePolicy:
        with self.db.tx() as cur:
            cur.execute(self.q["lock"], {"name": params.name})
            found = self._states(cur, cur.fetchall())
            current = found[0].policy if found else params.base
            policy = current.changed(params.changes, ValidationError)
            check_group_policy(params.name, policy)
            self._write(cur, "set", _policy_params(params.name, policy))
        self.db.admission.forget()
        return policy

    def _write(self, cur: Any, statement: str, values: dict[str, Any]) -> None:
        """Write a policy; when its aging changed, recompute the waiting jobs' order (a queue
        without a row had the default aging: its jobs were inserted with it)."""
        cur.execute(self.q["aging"], {"name": values["name"]})
        row = cur.fetchone()
        before = DEFAULT_AGING if row is None else float(row[0])
        cur.execute(self.q[statement], values)
        if before != values["aging"]:
            cur.execute(self.q["resort"], {"name": values["name"], "aging": values["aging"]})

    def pause(self, name: str, paused: bool) -> None:
        with self.db.tx(single=True) as cur:
            cur.execute(self.q["pause"], {"name": name, "paused": paused})
            if not paused:
                self.db.wake(cur, (name,))

    def get(self, name: str) -> QueueState | None:
        with self.db.read() as cur:
            cur.execute(self.q["get"], {"name": name})
            found = self._states(cur, cur.fetchall())
        return found[0] if found else None

    def list(self) -> list[QueueState]:
        with self.db.read() as cur:
            cur.execute(self.q["list"])
            return self._states(cur, cur.fetchall())

    def task_limits(self) -> dict[str, TaskLimits]:
        with self.db.read() as cur:
            cur.execute(self.q["limits_list"])
            rows = cur.fetchall()
            if not rows:
                return {}
            c = Columns.of(cur).index
        return {
            row[c["task"]]: TaskLimits(
                concurrency=row[c["concurrency"]],
                rate=_rate(row[c["rate_count"]], row[c["rate_period"]]),
                keyed=bool(row[c["keyed"]]),
            )
            for row in rows
        }

    def stats(self, lost_after: float) -> builtins.list[QueueFigures]:
        with self.db.read() as cur:
            cur.execute(self.q["stats"])
            rows = cur.fetchall()
            c = Columns.of(cur).index if rows else {}
            cur.execute(self.q["drain"], {"lost_after": lost_after})
            drain = {row[0]: float(row[1] or 0.0) for row in cur.fetchall()}
        oldest: dict[str, float] = {}
        held: dict[str, int] = {}
        limited: dict[str, builtins.list[str]] = {}
        for row in rows:
            queue = row[c["queue"]]
            held[queue] = held.get(queue, 0) + int(row[c["held"]] or 0)
            limited.setdefault(queue, [])
            if row[c["limited"]]:
                limited[queue].append(row[c["task"]])
            age = row[c["oldest"]]
            if age is not None:
                oldest[queue] = max(oldest.get(queue, 0.0), float(age), 0.0)
        return [
            QueueFigures(
                name=name,
                oldest_available=oldest.get(name),
                held=held.get(name, 0),
                drain_rate=drain.get(name, 0.0),
                limited_tasks=sorted(limited.get(name, [])),
            )
            for name in sorted(held.keys() | drain.keys())
        ]

    def _states(self, cur: Any, rows: Sequence[Any]) -> builtins.list[QueueState]:
        if not rows:
            return []
        c = Columns.of(cur).index
        out = []
        for row in rows:
            policy = policy_from(c, row)
            out.append(
                QueueState(
                    name=row[c["name"]],
                    policy=policy,
                    paused=bool(row[c["paused"]]),
                    updated_at=self.db.time(row[c["updated_at"]]),
                )
            )
        return out


def policy_from(c: Mapping[str, int], row: Sequence[Any]) -> QueuePolicy:
    """A stored policy row (`c`: column positions) as a `QueuePolicy`."""
    return QueuePolicy(
        max_depth=row[c["max_depth"]],
        admit_depth=row[c["admit_depth"]],
        admit_priority=_int(row[c["admit_priority"]], 1),
        max_wait=row[c["max_wait"]],
        overload=row[c["overload"]],
        shed_priority=row[c["shed_priority"]],
        shed_depth=row[c["shed_depth"]],
        resume_depth=row[c["resume_depth"]],
        aging=float(row[c["aging"]]),
        concurrency=row[c["concurrency"]],
        rate=_rate(row[c["rate_count"]], row[c["rate_period"]]),
    )


def _int(value: Any, default: int) -> int:
    return default if value is None else int(value)


def _rate(count: int | None, period: float | None) -> Rate | None:
    return None if count is None or period is None else Rate(int(count), float(period))


def _policy_params(name: str, policy: QueuePolicy) -> dict[str, Any]:
    rate = policy.rate
    return {
        "name": name,
        "max_depth": policy.max_depth,
        "admit_depth": policy.admit_depth,
        "admit_priority": policy.admit_priority,
        "max_wait": policy.max_wait,
        "overload": policy.overload,
        "shed_priority": policy.shed_priority,
        "shed_depth": policy.shed_depth,
        "resume_depth": policy.resume_depth,
        "aging": policy.aging,
        "concurrency": policy.concurrency,
        "rate_count": None if rate is None else rate.count,
        "rate_period": None if rate is None else rate.period,
    }
