"""The jobs area: insert (every enqueue path), read, count, cancel, retry and prune, and
the bulk operations (retry_many, cancel_many, purge), each one statement."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson

from offload.backends.group import ThreadGroups
from offload.backends.params import (
    Inserted,
    JobFilter,
    JobIdsParams,
    JobInsertParams,
    JobListParams,
    JobPruneParams,
    JobRetryManyParams,
    JobRetryParams,
)
from offload.backends.sql.rows import cells, column, jobs_from
from offload.core.containment import needle
from offload.core.errors import (
    BackendUnavailable,
    BackPressure,
    ConfigurationError,
    InvalidTransition,
    JobNotFound,
    OffloadError,
    OutcomeUnknown,
)
from offload.core.flow import DEFAULT_AGING
from offload.core.job import Job, JobSpec, Payload
from offload.core.records import JobChange, StateCensus
from offload.core.shaping import Idempotent, KeyRules, Outcome, decide
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
        #: Concurrent enqueues of this process share commits: SQLite has one writer at a
        #: time; PostgreSQL would group the commits of concurrent connections by itself, but
        #: each caller would still pay its own round trips and connection.
        self._groups = ThreadGroups(self._one, self.insert_group)
        self._shaped: dict[tuple[str, tuple[str, ...]], str] = {}

    def insert(self, params: JobInsertParams) -> Inserted:
        """Store the jobs; with concurrent callers in this process (and no caller's `conn`),
        in a transaction shared with theirs (`offload.backends.group`)."""
        if not params.payloads or not self.groupable(params):
            return self._one(params)
        return self._groups.submit(params)

    def groupable(self, params: JobInsertParams) -> bool:
        """Whether an insert may share a transaction with other callers' (`insert_group`):
        on PostgreSQL not one that takes locks (keys, a queue's admission policy), which a
        group would take in its callers' order, not sorted, and hold until it commits."""
        if params.conn is not None:
            return False
        if not self.db.parallel_writes:  # one writer at a time: no lock order to break
            return True
        return params.spec.rules is None and not self.db.admission.applies(params.spec.queue)

    def insert_group(self, group: Sequence[JobInsertParams]) -> list[Inserted | OffloadError]:
        """Each insert (none with a caller's `conn`) in one transaction, one savepoint
        each: a refused insert is undone alone and its error is its outcome. A failure of
        the transaction itself raises, having stored nothing. A group that is one run of
        plain inserts is one statement and no savepoint."""
        outcomes: list[Inserted | OffloadError] = []
        with self.db.enqueuing() as cur:
            runs = self._runs(group)
            for run in runs:
                if len(run) > 1:  # plain inserts of one spec: one statement for all of them
                    merged = self._merged(cur, run, whole=len(runs) == 1)
                    if merged is not None:
                        outcomes += merged
                        continue
                for params in run:  # each alone, so that a refusal is its caller's only
                    outcomes.append(self._in_savepoint(cur, params))
        return outcomes

    def _runs(self, group: Sequence[JobInsertParams]) -> list[list[JobInsertParams]]:
        """The group cut into runs of consecutive inserts that one statement can store
        together (one spec, no keys, no admission policy), and single others."""
        runs: list[list[JobInsertParams]] = []
        plain = None  # the spec of the run being built, if one statement can store it
        for params in group:
            spec = params.spec
            if plain is not None and (spec is plain or spec == plain):  # a Task's own: `is`
                runs[-1].append(params)
                continue
            runs.append([params])
            merges = spec.rules is None and not self.db.admission.applies(spec.queue)
            plain = spec if merges else None
        return runs

    def _merged(
        self, cur: Any, run: list[JobInsertParams], *, whole: bool
    ) -> list[Inserted] | None:
        """A run's payloads in one statement (ids split back by caller), or None if it was
        refused: its callers then go one by one. A run that is the `whole` group takes no
        savepoint (two statements less per group): a refusal by a queue's policy comes
        before it writes anything, and any other error fails the transaction."""
        payloads = [p for params in run for p in params.payloads]
        if not payloads:
            return [Inserted([]) for _ in run]
        if whole:
            try:
                ids = self._admitted(cur, run[0].spec, payloads)
            except BackPressure:
                return None
        else:
            cur.execute(self.q["savepoint"])
            try:
                ids = self._admitted(cur, run[0].spec, payloads)
            except OffloadError:
                cur.execute(self.q["rollback_to"])
                cur.execute(self.q["release"])
                return None
            cur.execute(self.q["release"])
        inserted, at = [], 0
        for params in run:
            inserted.append(Inserted(ids[at : at + len(params.payloads)]))
            at += len(params.payloads)
        return inserted

    def _in_savepoint(self, cur: Any, params: JobInsertParams) -> Inserted | OffloadError:
        """One caller's insert, undone alone if refused (its error is its outcome)."""
        if not params.payloads:
            return Inserted([])
        cur.execute(self.q["savepoint"])
        try:
            outcome: Inserted | OffloadError = self.insert_in(cur, params.spec, params.payloads)
        except OffloadError as exc:
            cur.execute(self.q["rollback_to"])
            outcome = exc
        cur.execute(self.q["release"])
        return outcome

    def _one(self, params: JobInsertParams) -> Inserted:
        """Insert; if the connection breaks before the commit is confirmed, send it once
        more on a fresh connection when every job has an idempotency key (a resent job
        whose first copy was stored finds its key held: no double), else raise
        OutcomeUnknown for the caller to decide.

        Jobs with keys take a transaction of their own, and so does a queue with an
        admission policy (as this process knows), or any insert the guard stopped (a
        policy this process missed)."""
        if not params.payloads:
            return Inserted([])
        spec = params.spec
        whole = (
            params.conn is not None
            or spec.rules is not None
            or self.db.admission.applies(spec.queue)
        )
        try:
            return self._insert(params, whole)
        except _PolicyFound:  # the guard stopped it: decide in one transaction
            return self._insert(params, True)

    def _insert(self, params: JobInsertParams, whole: bool) -> Inserted:
        """`insert` in one transaction (`whole`), or as one statement of its own."""
        try:
            with self.db.enqueuing(params.conn, single=not whole) as cur:
                return self.insert_in(cur, params.spec, params.payloads, whole=whole)
        except OutcomeUnknown as unknown:
            if params.conn is not None or any(p.idempotency_key is None for p in params.payloads):
                raise
            try:
                with self.db.enqueuing(single=not whole) as cur:
                    return self.insert_in(cur, params.spec, params.payloads, whole=whole)
            except BackendUnavailable:  # the first try may still have stored them
                raise unknown from None

    def insert_in(
        self, cur: Any, spec: JobSpec, payloads: Sequence[Payload], *, whole: bool = True
    ) -> Inserted:
        """Insert in the transaction of `cur` (cron ticks use it too); ids by position.

        `whole` False means `cur` runs each statement as its own transaction (only for
        jobs without keys): a policy found only then is left to the caller
        (`_PolicyFound`), to decide in one.
        """
        if spec.rules is not None:
            return self._keyed(cur, spec, spec.rules, payloads)
        return Inserted(self._admitted(cur, spec, payloads, whole=whole))

    def _keyed(
        self, cur: Any, spec: JobSpec, rules: KeyRules, payloads: Sequence[Payload]
    ) -> Inserted:
        """The keyed path: lock the keys, read the jobs holding them, decide each payload
        (`offload.core.shaping.decide`), store the new ones, then supersede by replace key.

        Every rule is decided under the locks, in this transaction: concurrent producers
        of one key take turns, and what one stored is seen by the next.
        """
        unique = [p.unique_key for p in payloads if p.unique_key is not None]
        idempotent = [p.idempotency_key for p in payloads if p.idempotency_key is not None]
        replace = [p.replace_key for p in payloads if p.replace_key is not None]
        locks = sorted(
            {f"offload:unique:{k}" for k in unique}
            | {f"offload:idempotency:{k}" for k in idempotent}
            | {f"offload:replace:{k}" for k in replace}
        )
        if locks:
            cur.execute(self.q["key_lock"], {"keys": _json(locks)})
            row = cur.fetchone() if cur.description else None
            if row is not None and row[0] not in _FRESH_SNAPSHOTS:
                raise ConfigurationError(
                    f"an enqueue with unique, idempotency or replace keys needs a READ "
                    f"COMMITTED transaction, not {str(row[0]).upper()}: its older snapshot "
                    "would miss jobs holding the keys; enqueue in another transaction"
                )
        outcomes = decide(
            spec.task,
            [(p.args, p.kwargs, p.idempotency_key, p.unique_key) for p in payloads],
            self._unique_holders(cur, rules, unique),
            self._idempotent_holders(cur, rules, idempotent),
            rules.on_duplicate,
        )
        new = [p for p, outcome in zip(payloads, outcomes, strict=True) if outcome.new]
        stored = iter(self._admitted(cur, spec, new) if new else [])
        ids: list[int] = []
        for outcome in outcomes:
            if outcome.held is not None:
                ids.append(outcome.held)
            elif outcome.first is not None:
                ids.append(ids[outcome.first])
            else:
                ids.append(next(stored))
        if replace:
            self._supersede(cur, rules, payloads, ids, outcomes)
        return Inserted(ids, frozenset(i for i, o in enumerate(outcomes) if not o.new))

    def _unique_holders(self, cur: Any, rules: KeyRules, keys: list[str]) -> dict[str, int]:
        """The job holding each of the unique `keys` that is held, under `rules`."""
        if not keys:
            return {}
        states = [str(s) for s in rules.unique_states]
        values = {"keys": _json(keys), "states": _json(states), "period": rules.unique_period}
        cur.execute(self.q["unique_holders"], values)
        rows = cur.fetchall()
        found = zip(column(cur, rows, "key"), column(cur, rows, "id"), strict=True)
        return {str(key): int(job_id) for key, job_id in found}

    def _idempotent_holders(
        self, cur: Any, rules: KeyRules, keys: list[str]
    ) -> dict[str, Idempotent]:
        """The newest job enqueued with each of the idempotency `keys` within retention."""
        if not keys:
            return {}
        cur.execute(
            self.q["idempotent_holders"], {"keys": _json(keys), "retention": rules.retention}
        )
        rows = cur.fetchall()
        cells = (column(cur, rows, n) for n in ("key", "id", "task", "args", "kwargs"))
        return {
            str(key): Idempotent(int(job_id), task, args, kwargs)
            for key, job_id, task, args, kwargs in zip(*cells, strict=True)
        }

    def _supersede(
        self,
        cur: Any,
        rules: KeyRules,
        payloads: Sequence[Payload],
        ids: list[int],
        outcomes: list[Outcome],
    ) -> None:
        """Cancel the queued jobs carrying each new job's replace key, in batch order, so
        that each cancelled job names the one stored after it; wake the workers of running
        ones asked to stop."""
        asked: set[str] = set()
        for p, job_id, outcome in zip(payloads, ids, outcomes, strict=True):
            if p.replace_key is None or not outcome.new:
                continue
            values = {"key": p.replace_key, "id": job_id, "running": rules.replace_running}
            cur.execute(self.q["supersede"], values)
            rows = cur.fetchall()
            names = ("id", "queue", "state", "has_children")
            changed, ended = [], []
            for old_id, queue, state, waited_for in cells(cur, rows, *names):
                changed.append(JobChange(int(old_id), queue, JobState(state)))
                if state == JobState.RUNNING:
                    asked.add(queue)
                elif waited_for:
                    ended.append(int(old_id))
            self._written(cur, changed)
            if ended:
                self.db.workflows.released(cur, ended)
        if asked:
            self.db.wake(cur, asked)

    def _admitted(
        self, cur: Any, spec: JobSpec, payloads: Sequence[Payload], *, whole: bool = True
    ) -> list[int]:
        """Store the jobs, admitted first when their queue has an admission policy (see
        `offload.backends.sql.admission`): stored, stored `shed`, or refused with
        `BackPressure` and nothing stored."""
        admission = self.db.admission
        if not admission.applies(spec.queue, cur):
            ids = self._store(cur, spec, payloads, admitted=False, shed=False)
            if ids is not None:
                return ids
            admission.refresh(cur)  # the guard stopped it: the queue has a policy now
            if not whole:
                raise _PolicyFound
        shed = admission.decide(cur, spec, len(payloads))
        ids = self._store(cur, spec, payloads, admitted=True, shed=shed)
        if ids is None:
            raise RuntimeError("an admitted insert stored nothing")
        return ids

    def _store(
        self, cur: Any, spec: JobSpec, payloads: Sequence[Payload], *, admitted: bool, shed: bool
    ) -> list[int] | None:
        """Run the insert; None if the guard stopped it (`admitted` False)."""
        values = _spec_params(spec)
        values.update(admitted=admitted, shed=shed, defer=self.db.defers_wake(cur))
        if len(payloads) == 1:
            values.update(payloads[0]._asdict())
            cur.execute(self.q["insert_one"], values)
            self.db.wake(cur, (spec.queue,), inserted=True)
            job_id = self.db.inserted_id(cur)
            return [job_id] if job_id else None
        # Whole tuples only when some job has a key; else most batches are one text a job
        # (its args: kwargs {}), the others an [args, kwargs] pair (see insert_many).
        wide = any([p[2:] != _NO_KEYS for p in payloads])  # no call per job
        if wide:
            rows_of: list[Any] = [tuple(p) for p in payloads]
        else:
            rows_of = [p[0] if p[1] == "{}" else p[:2] for p in payloads]
        values["payloads"] = orjson.dumps(rows_of).decode()
        values["wide"] = wide
        cur.execute(self.q["insert_many"], values)
        ids = self.db.inserted_ids(cur, len(payloads))
        self.db.wake(cur, (spec.queue,), inserted=True)
        return ids or None

    def retry_many(self, params: JobRetryManyParams) -> list[JobChange]:
        values = self._matching(params.where)
        values["budgets"] = orjson.dumps(dict(params.budgets)).decode()
        return self.change(self.where("retry_many", params.where), values)

    def cancel_many(self, where: JobFilter) -> list[JobChange]:
        return self.change(self.where("cancel_many", where), self._matching(where))

    def purge(self, where: JobFilter) -> int:
        with self.db.tx(single=True) as cur:
            cur.execute(self.where("purge", where), self._matching(where))
            return int(cur.rowcount)

    def where(self, name: str, where: JobFilter) -> str:
        """Statement `name` with the condition of the parts of `where` that are given (the
        `where_*` fragments, joined by AND) in place of its `{filter}`: one statement per
        shape of filter, built once."""
        state = where.state
        shape = tuple(
            _STATE_PARTS.get(state, part) if part == "state" and state is not None else part
            for part in _PARTS
            if getattr(where, part) is not None
        )
        key = (name, shape)
        sql = self._shaped.get(key)
        if sql is None:
            parts = [_without_comments(self.q[f"where_{part}"]) for part in shape]
            condition = "\n  AND ".join(f"({part})" for part in parts) or "TRUE"
            sql = self._shaped[key] = self.q[name].replace("{filter}", condition)
        return sql

    def change(self, sql: str, values: dict[str, Any]) -> list[JobChange]:
        """Run one bulk state change (`sql` returns id, queue, state, has_children); wake
        the workers of the queues it concerns; release what waited for the jobs it ended."""
        with self.db.tx() as cur:
            cur.execute(sql, values)
            rows = cur.fetchall()
            names = ("id", "queue", "state", "has_children")
            changed, ended = [], []
            for job_id, queue, state, waited_for in cells(cur, rows, *names):
                changed.append(JobChange(int(job_id), queue, JobState(state)))
                if waited_for and state in FINISHED:
                    ended.append(int(job_id))
            self._written(cur, changed)
            if ended:
                self.db.workflows.released(cur, ended)
            woken = {c.queue for c in changed if c.state in (JobState.AVAILABLE, JobState.RUNNING)}
            if woken:
                self.db.wake(cur, woken)
        return sorted(changed, key=lambda change: change.id)

    def _written(self, cur: Any, changed: Sequence[JobChange]) -> None:
        """The events of a cancel's or a retry's changes, in its transaction: a job
        cancelled, or back in the queue (`requeued`); a running job asked to stop has not
        changed state yet (its outcome tells)."""
        cancelled = [c.id for c in changed if c.state is JobState.CANCELLED]
        requeued = [c.id for c in changed if c.state in (JobState.AVAILABLE, JobState.SCHEDULED)]
        self.db.events.written(cur, cancelled)
        self.db.events.written(cur, requeued, "requeued")

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
            "error_type": where.error_type,
            "args_contains": (
                None if where.args_contains is None else orjson.dumps(where.args_contains).decode()
            ),
            "args_needle": None if where.args_contains is None else needle(where.args_contains),
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
        values["below"] = _below(params.before_id)
        if values["below"] is None:
            return []
        values["limit"] = min(params.limit, _ID_MAX)
        with self.db.read() as cur:
            cur.execute(self.where("list", params.where), values)
            return jobs_from(cur, cur.fetchall(), self.db.time)

    def ids(self, params: JobIdsParams) -> builtins.list[int]:
        values = self._matching(params.where)
        values["states"] = orjson.dumps(sorted(str(s) for s in params.states)).decode()
        values["below"] = _below(params.before_id)
        if values["below"] is None:
            return []
        values["limit"] = min(params.limit, _ID_MAX)
        with self.db.read() as cur:
            cur.execute(self.where("ids", params.where), values)
            return [int(row[0]) for row in cur.fetchall()]

    def count(self, where: JobFilter) -> int:
        with self.db.read() as cur:
            cur.execute(self.where("count", where), self._matching(where))
            return int(cur.fetchone()[0])

    def counts(self) -> dict[str, dict[str, int]]:
        counts: dict[str, dict[str, int]] = {}
        with self.db.read() as cur:
            cur.execute(self.q["counts"])
            rows = cur.fetchall()
            cells = (column(cur, rows, name) for name in ("queue", "state", "n"))
            for queue, state, number in zip(*cells, strict=True):
                counts.setdefault(queue, {})[state] = int(number)
        return counts

    def census(self) -> builtins.list[StateCensus]:
        with self.db.read() as cur:
            cur.execute(self.q["census"])
            rows = cur.fetchall()
            cells = (column(cur, rows, name) for name in ("queue", "state", "n", "oldest"))
            return [
                StateCensus(queue, JobState(state), int(n), None if age is None else float(age))
                for queue, state, n, age in zip(*cells, strict=True)
            ]

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
                self._written(cur, [JobChange(job.id, job.queue, job.state)])
                if job.state is JobState.CANCELLED:
                    self.db.workflows.released(cur, [job.id])
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
            if removed:
                self.db.workflows.pruned(cur)
        return removed


#: The parts of a JobFilter, each a `where_*` fragment of jobs.sql.
_PARTS = ("ids", "queue", "state", "task", "before", "after", "error_type", "args_contains")
#: The `where_state_*` fragment of the states whose jobs an index other than
#: offload_jobs_state holds (the others take `where_state`).
_STATE_PARTS = {JobState.AVAILABLE: "state_available", JobState.RUNNING: "state_running"}
#: A payload's fields after its arguments when it has no key of any kind.
_NO_KEYS = Payload()[2:]
#: Isolation levels whose statements each read a fresh snapshot (PostgreSQL's names).
_FRESH_SNAPSHOTS = ("read committed", "read uncommitted")


class _PolicyFound(Exception):
    """A plain insert found a queue policy this process did not know of (raised only
    where `cur` commits each statement by itself, so that the caller retries whole)."""


def _without_comments(sql: str) -> str:
    """A fragment without its whole-line comments, to be spliced into a condition."""
    return "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))


def _beyond_ids(job_id: int) -> bool:
    """True for an int no job id can be (anything else goes to the database as before)."""
    return isinstance(job_id, int) and not _ID_MIN <= job_id <= _ID_MAX


def _below(before_id: int | None) -> int | None:
    """The largest id a page below `before_id` may hold, within the id range; None when
    no id is below it. Past the top of the range every id is below it."""
    if before_id is None or before_id > _ID_MAX:
        return _ID_MAX
    if before_id <= _ID_MIN:
        return None
    return before_id - 1


def _spec_params(spec: JobSpec) -> dict[str, Any]:
    return {
        "task": spec.task,
        "queue": spec.queue,
        "priority": spec.priority,
        "max_attempts": spec.max_attempts,
        "delay": spec.delay,
        "run_at": spec.run_at,
        "meta": spec.meta,
        "channel": spec.channel,
        "default_aging": DEFAULT_AGING,
    }


def _json(values: list[Any]) -> str:
    return orjson.dumps(values).decode()
