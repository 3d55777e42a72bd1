"""The jobs area: insert (every enqueue path), read, count, cancel, retry and prune, and
the bulk operations (retry_many, cancel_many, purge), each one statement."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson

from offload.backends.params import (
    JobFilter,
    JobInsertParams,
    JobListParams,
    JobPruneParams,
    JobRetryManyParams,
    JobRetryParams,
)
from offload.backends.sql.rows import column, jobs_from
from offload.core.errors import (
    BackendUnavailable,
    InvalidTransition,
    JobNotFound,
    OutcomeUnknown,
)
from offload.core.flow import DEFAULT_AGING
from offload.core.job import Job, JobSpec, Payload
from offload.core.records import JobChange
from offload.core.states import FINISHED, JobState

if TYPE_CHECKING:
    from offload.backends.sql.connector import SqlBackend

#: Ids are 64-bit integers: SQLite cannot even compare a larger Python int with a column
#: (OverflowError), PostgreSQL can; an id outside this range names no job on either.
_ID_MIN, _ID_MAX = -(2**63), 2**63 - 1


class SqlJobs:
    """`JobStore` over a backend's `jobs.sql`."""

    def __init__(self, db: SqlBackend) -> None:
        self.db = db
        self.q = db.q["jobs"]

    def insert(self, params: JobInsertParams) -> list[int]:
        """Insert; if the connection breaks before the commit is confirmed, send it once
        more on a fresh connection when every job has an idempotency key (a resent job
        whose first copy was stored finds its key taken: no double), else raise
        OutcomeUnknown for the caller to decide.

        A queue with an admission policy (as this process knows) takes a transaction of
        its own; so does any insert the guard stopped (a policy this process missed)."""
        if not params.payloads:
            return []
        whole = params.conn is not None or self.db.admission.applies(params.spec.queue)
        try:
            return self._insert(params, whole)
        except _PolicyFound:  # the guard stopped it: decide in one transaction
            return self._insert(params, True)

    def _insert(self, params: JobInsertParams, whole: bool) -> list[int]:
        """`insert` in one transaction (`whole`), or as one statement of its own."""
        try:
            with self.db.tx(params.conn, single=not whole) as cur:
                return self.insert_in(cur, params.spec, params.payloads, whole=whole)
        except OutcomeUnknown as unknown:
            if params.conn is not None or any(p.idempotency_key is None for p in params.payloads):
                raise
            try:
                with self.db.tx(single=not whole) as cur:
                    return self.insert_in(cur, params.spec, params.payloads, whole=whole)
            except BackendUnavailable:  # the first try may still have stored them
                raise unknown from None

    def insert_in(
        self, cur: Any, spec: JobSpec, payloads: Sequence[Payload], *, whole: bool = True
    ) -> list[int]:
        """Insert in the transaction of `cur` (cron ticks use it too); ids by position.

        Into a queue with an admission policy the jobs are admitted first, in this
        transaction (see `offload.backends.sql.admission`): stored, stored `shed`, or
        refused with `BackPressure` and nothing stored. `whole` False means `cur` runs
        each statement as its own transaction: a policy found only then is left to the
        caller (`_PolicyFound`), to decide in one.
        """
        admission = self.db.admission
        if admission.applies(spec.queue, cur):
            shed = admission.decide(cur, spec, payloads)
            ids = self._store(cur, spec, payloads, admitted=True, shed=shed)
            if ids is None:
                raise RuntimeError("an admitted insert stored nothing")
            return ids
        ids = self._store(cur, spec, payloads, admitted=False, shed=False)
        if ids is not None:
            return ids
        admission.refresh(cur)  # the guard stopped it: the queue has a policy now
        if not whole:
            raise _PolicyFound
        return self.insert_in(cur, spec, payloads)

    def _store(
        self, cur: Any, spec: JobSpec, payloads: Sequence[Payload], *, admitted: bool, shed: bool
    ) -> list[int] | None:
        """Run the insert; None if the guard stopped it (`admitted` False).

        A payload whose idempotency key is taken inserts nothing (ON CONFLICT DO NOTHING)
        and gets the id of the job holding the key, read in the same transaction; a key
        not held by any job then means the guard stopped the insert.
        """
        values = _spec_params(spec)
        values.update(admitted=admitted, shed=shed)
        # Keys need ON CONFLICT, whose speculative insertion costs PostgreSQL a second WAL
        # record per row: statements without keys go without it.
        if len(payloads) == 1:
            values.update(payloads[0]._asdict())
            key = payloads[0].idempotency_key
            cur.execute(self.q["insert_one" if key is None else "insert_one_keyed"], values)
            self.db.wake(cur, (spec.queue,), inserted=True)
            ids = [self.db.inserted_id(cur)]
        elif any(p.idempotency_key is not None for p in payloads):
            values["payloads"] = orjson.dumps([tuple(p) for p in payloads]).decode()
            cur.execute(self.q["insert_many_keyed"], values)
            self.db.wake(cur, (spec.queue,), inserted=True)
            rows = cur.fetchall()
            ids = _by_position(payloads, column(cur, rows, "id"), column(cur, rows, "key"))
        else:
            # Whole tuples only when some job has a key: most batches are two texts a job.
            wide = any([p[3:] != _NO_KEYS for p in payloads])  # no call per job
            rows_of = [tuple(p) if wide else (p.args, p.kwargs) for p in payloads]
            values["payloads"] = orjson.dumps(rows_of).decode()
            values["wide"] = wide
            cur.execute(self.q["insert_many"], values)
            self.db.wake(cur, (spec.queue,), inserted=True)
            # Ids come from one sequence in payload order; RETURNING order is not promised.
            ids = sorted(int(row[0]) for row in cur.fetchall())  # RETURNING id alone
            if not ids:
                return None
        if 0 in ids:  # keys already taken: the jobs that hold them
            pairs = list(zip(payloads, ids, strict=True))
            keys = [p.idempotency_key for p, job_id in pairs if not job_id]
            if None in keys:
                return None
            cur.execute(self.q["ids_by_key"], {"keys": orjson.dumps(keys).decode()})
            rows = cur.fetchall()
            found = zip(column(cur, rows, "key"), column(cur, rows, "id"), strict=True)
            held = {str(key): int(job_id) for key, job_id in found}
            if not all(key in held for key in keys):
                return None
            ids = [job_id or held[str(p.idempotency_key)] for p, job_id in pairs]
        return ids

    def retry_many(self, params: JobRetryManyParams) -> list[JobChange]:
        values = self._matching(params.where)
        values["budgets"] = orjson.dumps(dict(params.budgets)).decode()
        return self._change_many("retry_many", values)

    def cancel_many(self, where: JobFilter) -> list[JobChange]:
        return self._change_many("cancel_many", self._matching(where))

    def purge(self, where: JobFilter) -> int:
        with self.db.tx(single=True) as cur:
            cur.execute(self.q["purge"], self._matching(where))
            return int(cur.rowcount)

    def _change_many(self, operation: str, values: dict[str, Any]) -> list[JobChange]:
        """Run one bulk state change; wake the workers of the queues it concerns."""
        with self.db.tx() as cur:
            cur.execute(self.q[operation], values)
            rows = cur.fetchall()
            cells = (column(cur, rows, name) for name in ("id", "queue", "state"))
            changed = [
                JobChange(int(job_id), queue, JobState(state))
                for job_id, queue, state in zip(*cells, strict=True)
            ]
            woken = {c.queue for c in changed if c.state in (JobState.AVAILABLE, JobState.RUNNING)}
            if woken:
                self.db.wake(cur, woken)
        return sorted(changed, key=lambda change: change.id)

    def _matching(self, where: JobFilter) -> dict[str, Any]:
        """The parameters of the `matching` fragment for a filter."""
        ids = None
        if where.ids is not None:  # an id no job can have matches nothing, as in `get`
            ids = orjson.dumps([i for i in where.ids if not _beyond_ids(i)]).decode()
        return {
            "ids": ids,
            "queue": where.queue,
            "state": None if where.state is None else str(where.state),
            "task": where.task,
            "before": self.db.time_param(where.before),
            "after": self.db.time_param(where.after),
        }

    def get(self, job_id: int) -> Job:
        if _beyond_ids(job_id):
            raise JobNotFound(job_id)
        with self.db.read() as cur:
            cur.execute(self.q["get"], {"id": job_id})
            found = jobs_from(cur, cur.fetchall(), self.db.time)
        if not found:
            raise JobNotFound(job_id)
        return found[0]

    def list(self, params: JobListParams) -> list[Job]:
        values = self._matching(params.where)
        # Past either end of the id range: every id is before it, or none.
        values["before_id"] = _before(params.before_id)
        values["limit"] = min(params.limit, _ID_MAX)
        with self.db.read() as cur:
            cur.execute(self.q["list"], values)
            return jobs_from(cur, cur.fetchall(), self.db.time)

    def counts(self) -> dict[str, dict[str, int]]:
        counts: dict[str, dict[str, int]] = {}
        with self.db.read() as cur:
            cur.execute(self.q["counts"])
            rows = cur.fetchall()
            cells = (column(cur, rows, name) for name in ("queue", "state", "n"))
            for queue, state, number in zip(*cells, strict=True):
                counts.setdefault(queue, {})[state] = int(number)
        return counts

    def cancel(self, job_id: int) -> Job:
        return self._transition("cancel", {"id": job_id})

    def retry(self, params: JobRetryParams) -> Job:
        return self._transition("retry", {"id": params.job_id, "budget": params.budget})

    def _transition(self, operation: str, values: dict[str, Any]) -> Job:
        """Run a single-job state change; explain a refusal as not-found or a bad state."""
        job_id = values["id"]
        if _beyond_ids(job_id):
            raise JobNotFound(job_id)
        with self.db.tx() as cur:
            cur.execute(self.q[operation], values)
            changed = jobs_from(cur, cur.fetchall(), self.db.time)
            if changed:
                job = changed[0]
                if job.state in (JobState.AVAILABLE, JobState.RUNNING):
                    # Wakes workers to claim it, or its own worker to act on the cancel.
                    self.db.wake(cur, (job.queue,))
                return job
        current = self.get(job_id)
        raise InvalidTransition(job_id, str(current.state), operation)

    def prune(self, params: JobPruneParams) -> int:
        removed = 0
        with self.db.tx() as cur:
            for state, age in params.older_than.items():
                if state not in FINISHED:
                    raise ValueError(f"only finished states are pruned, not {state}")
                cur.execute(self.q["prune"], {"state": str(state), "age": age})
                removed += cur.rowcount
        return removed


#: A payload's fields after its arguments when it has no key of any kind.
_NO_KEYS = Payload()[3:]


class _PolicyFound(Exception):
    """A plain insert found a queue policy this process did not know of (raised only
    where `cur` commits each statement by itself, so that the caller retries whole)."""


def _beyond_ids(job_id: int) -> bool:
    """True for an int no job id can be (anything else goes to the database as before)."""
    return isinstance(job_id, int) and not _ID_MIN <= job_id <= _ID_MAX


def _before(before_id: int | None) -> int | None:
    """A listing's `before_id` within the id range, meaning the same."""
    if before_id is None or before_id > _ID_MAX:
        return None
    return max(before_id, _ID_MIN)


def _spec_params(spec: JobSpec) -> dict[str, Any]:
    return {
        "task": spec.task,
        "queue": spec.queue,
        "priority": spec.priority,
        "max_attempts": spec.max_attempts,
        "delay": spec.delay,
        "run_at": spec.run_at,
        "meta": spec.meta,
        "default_aging": DEFAULT_AGING,
    }


def _by_position(payloads: Sequence[Payload], ids: list[Any], keys: list[Any]) -> list[int]:
    """Each payload's new id, 0 where its idempotency key was taken.

    Rows are inserted in payload order, so the sequence's ids ascend with position (the
    order RETURNING lists them in is not promised). A payload inserts a row unless its key
    was held already, or appeared earlier in the batch; the returned keys tell which.
    """
    new_ids = iter(sorted(int(job_id) for job_id in ids))
    if len(ids) == len(payloads):
        return list(new_ids)
    inserted_keys = {key for key in keys if key is not None}
    seen: set[str] = set()
    out: list[int] = []
    for p in payloads:
        key = p.idempotency_key
        if key is None or (key in inserted_keys and key not in seen):
            out.append(next(new_ids))
        else:
            out.append(0)
        if key is not None:
            seen.add(key)
    return out
