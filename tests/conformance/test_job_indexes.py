"""Which index serves each query a face or the worker makes of the jobs (schema 17): the
job row carries no index only counts read, so every count and state filter must find the
index that holds its states. Counts are checked exact over every state and queue; plans
are checked on both backends (SQLite: EXPLAIN QUERY PLAN; PostgreSQL: EXPLAIN with
sequential scans disabled, so a plan without an index means no index can serve it)."""

from __future__ import annotations

import json
import re
import sqlite3
from collections import Counter
from typing import Any

import psycopg
import pytest

import offload
from offload.backends.base import Backend
from offload.backends.params import ClaimParams, JobFilter
from offload.backends.sqlite.backend import STATE_PREDICATES
from offload.core.states import JobState
from tests.conformance.helpers import RawDB, insert, sqlite_path

QUEUES = ("a", "b")
FINISHED = "offload_jobs_finished"


def _every_state(backend: Backend, db_url: str) -> None:
    """Two jobs of every state in each queue, set by hand (the counts do not care how)."""
    raw = RawDB(db_url)
    for queue in QUEUES:
        ids = insert(backend, 2 * len(JobState), queue=queue)
        for n, state in enumerate(JobState):
            for job_id in ids[2 * n : 2 * n + 2]:
                raw.execute("UPDATE offload_jobs SET state = ? WHERE id = ?", [str(state), job_id])


def test_counts_and_state_counts_are_exact_over_every_state_and_queue(
    backend: Backend, app: offload.App, db_url: str
) -> None:
    _every_state(backend, db_url)
    rows = RawDB(db_url).query("SELECT queue, state, count(*) AS n FROM offload_jobs GROUP BY 1, 2")
    truth = {(r["queue"], r["state"]): int(r["n"]) for r in rows}
    assert len(truth) == len(QUEUES) * len(JobState)
    found = {(q, s): n for q, states in backend.jobs.counts().items() for s, n in states.items()}
    assert found == truth
    for state in JobState:
        total = sum(n for (_, s), n in truth.items() if s == state)
        assert backend.jobs.count(JobFilter(state=state)) == total, state
        assert backend.jobs.count(JobFilter(state=state, queue="a")) == truth[("a", state)]
    census = Counter({(c.queue, str(c.state)): c.jobs for c in backend.jobs.census()})
    assert dict(census) == truth


def _plan(db_url: str, sql: str, params: dict[str, Any]) -> str:
    """The plan of one statement, as one text (PostgreSQL's with sequential scans off)."""
    if db_url.startswith("sqlite"):
        with sqlite3.connect(sqlite_path(db_url)) as db:
            rows = db.execute("EXPLAIN QUERY PLAN " + sql, params).fetchall()
            return "\n".join(str(row[3]) for row in rows)
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("SET enable_seqscan = off")
        rows = conn.execute(("EXPLAIN " + sql).encode(), params).fetchall()
        return "\n".join(str(row[0]) for row in rows)


def _params(sql: str, given: dict[str, Any]) -> dict[str, Any]:
    """Every parameter the statement names: those given, the others NULL."""
    names = set(re.findall(r"(?<![:\w]):(\w+)", sql)) | set(re.findall(r"%\((\w+)\)s", sql))
    return {name: given.get(name) for name in names}


#: (area, statement, parameters, indexes the plan must use, "x|y" for either): the faces'
#: and the worker's reads of the jobs by state; where_state's shapes are checked below.
STATEMENTS: list[tuple[str, str, dict[str, Any], tuple[str, ...]]] = [
    (
        "jobs",
        "prune",
        {"state": "succeeded", "age": 60.0},
        ("offload_jobs_finished|offload_jobs_state",),
    ),
    ("jobs", "supersede", {"key": "k", "id": 10, "running": False}, ("offload_jobs_replace",)),
    ("claims", "rescue", {}, ("offload_jobs_running",)),
    ("queues", "stats", {}, ("offload_jobs_claim", "offload_jobs_running")),
    ("sweep", "readmit", {"queue": "a", "hooked": "[]"}, ("offload_jobs_state",)),
    ("topics", "busy_keys", {"queue": "topic:t:g"}, ("offload_jobs_claim", "offload_jobs_state")),
]


@pytest.mark.parametrize(("area", "name", "given", "indexes"), STATEMENTS)
def test_each_read_of_jobs_by_state_is_served_by_its_index(
    backend: Backend,
    app: offload.App,
    db_url: str,
    area: str,
    name: str,
    given: dict[str, Any],
    indexes: tuple[str, ...],
) -> None:
    sql = getattr(backend, area).q[name]
    plan = _plan(db_url, sql, _params(sql, given))
    assert "Seq Scan on offload_jobs" not in plan, plan
    for index in indexes:  # "x|y": either serves it (PostgreSQL picks by its costs)
        assert any(i in plan for i in index.split("|")), f"{area}.{name}: no {index}:\n{plan}"


def test_sqlite_counts_and_census_read_the_index_of_each_state(sqlite_url: str) -> None:
    """SQLite reads a covering index per part where PostgreSQL's planner scans the table
    (its counts and census are one scan, as they were with the full state index)."""
    app = offload.App(sqlite_url)
    app.migrate()
    try:
        for name in ("counts", "census"):
            plan = _plan(sqlite_url, app.backend.jobs.q[name], {})  # type: ignore[attr-defined]
            for index in ("offload_jobs_state", "offload_jobs_claim", "offload_jobs_running"):
                assert index in plan, f"{name} does not use {index}:\n{plan}"
            assert "SCAN offload_jobs\n" not in plan + "\n", plan
    finally:
        app.close()


#: (area, statement, parameters, indexes SQLite's plan must use): every other SQLite statement
#: whose WHERE spells a partial index's state predicate (schema 19's macros), by the indexes
#: the plan had with schema 18's `IN (...)` predicates (benchmarks/index_plans.py).
SQLITE_STATEMENTS: list[tuple[str, str, dict[str, Any], tuple[str, ...]]] = [
    ("claims", "claim", {"queue": "a", "limit": 10}, ("offload_jobs_claim",)),
    ("claims", "probe", {"queue": "a"}, ("offload_jobs_limited",)),
    (
        "claims",
        "limited_pick",
        {"queue": "a", "now": 2e9, "window": 50, "limit": 10},
        ("offload_jobs_claim", "offload_jobs_running"),
    ),
    (
        "claims",
        "group_claim",
        {"queue": "a", "task": "t", "size": 10, "max_wait": 1.0},
        ("offload_jobs_group", "offload_jobs_group_due", "offload_jobs_running"),
    ),
    (
        "claims",
        "group_wait",
        {"queue": "a", "task": "t", "max_wait": 1.0},
        ("offload_jobs_group_due",),
    ),
    ("jobs", "prune", {"state": "succeeded", "age": 60.0}, ("offload_jobs_finished",)),
    ("jobs", "admission_depth", {"queue": "a", "cap": 100}, ("offload_jobs_claim",)),
    ("jobs", "admission_wait", {"queue": "a"}, ("offload_jobs_claim",)),
    ("queues", "resort", {"name": "a", "aging": 60.0}, ("offload_jobs_claim",)),
    ("sweep", "shed", {"queue": "a"}, ("offload_jobs_claim",)),
    (
        "sweep",
        "take",
        {"queue": "a", "task": "t", "limit": 10},
        ("offload_jobs_claim", "offload_jobs_state"),
    ),
    ("topics", "groups", {}, ("offload_jobs_claim", "offload_jobs_running", "offload_jobs_state")),
]


@pytest.mark.parametrize(("area", "name", "given", "indexes"), SQLITE_STATEMENTS)
def test_each_sqlite_statement_spelling_an_index_predicate_uses_that_index(
    sqlite_url: str, area: str, name: str, given: dict[str, Any], indexes: tuple[str, ...]
) -> None:
    app = offload.App(sqlite_url)
    app.migrate()
    try:
        sql = getattr(app.backend, area).q[name]
        plan = _plan(sqlite_url, sql, _params(sql, given))
        for index in indexes:
            assert re.search(rf"\b{index}\b", plan), f"{area}.{name}: no {index}:\n{plan}"
        assert "SCAN offload_jobs\n" not in plan + "\n", plan
    finally:
        app.close()


def test_sqlite_index_predicates_are_comparisons_spelt_by_the_macros(sqlite_url: str) -> None:
    """Schema 19: no partial index of the jobs tests an `IN (...)` list (SQLite builds a
    temporary b-tree for it on each row written), and each state macro the queries use is,
    word for word, the predicate of an index (what SQLite's planner matches)."""
    app = offload.App(sqlite_url)
    app.migrate()
    app.close()
    with sqlite3.connect(sqlite_path(sqlite_url)) as db:
        rows = db.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'offload_jobs'"
            " AND sql LIKE '% WHERE %'"
        ).fetchall()
    predicates = {name: " ".join(sql.split(" WHERE ", 1)[1].split()) for name, sql in rows}
    assert len(predicates) >= 10, predicates
    for name, predicate in predicates.items():
        assert " IN " not in predicate.upper(), f"{name}: {predicate}"
    for macro, text in STATE_PREDICATES.items():
        holders = [name for name, predicate in predicates.items() if text in predicate]
        assert holders, f"{macro} is no index's predicate: {text}"


@pytest.mark.parametrize("state", list(JobState))
def test_a_count_by_state_reads_the_index_that_holds_that_state(
    backend: Backend, app: offload.App, db_url: str, state: JobState
) -> None:
    index = {
        JobState.AVAILABLE: "offload_jobs_claim",
        JobState.RUNNING: "offload_jobs_running",
    }.get(state, "offload_jobs_state")
    for where in (JobFilter(state=state), JobFilter(state=state, queue="a")):
        sql = backend.jobs.where("count", where)  # type: ignore[attr-defined]
        plan = _plan(db_url, sql, _params(sql, backend.jobs._matching(where)))  # type: ignore[attr-defined]
        assert index in plan, f"{where} does not use {index}:\n{plan}"
        assert "Seq Scan on offload_jobs" not in plan, plan


def test_a_heartbeat_is_a_hot_update_on_postgresql(pg_url: str) -> None:
    """No index holds lease_until (schema 17): renewing leases rewrites the rows alone, HOT
    updates where the page has room (it has, for a few jobs), and writes no index entry.
    Counted in the renewal's own transaction, which is then rolled back."""
    app = offload.App(pg_url)
    app.migrate()
    try:
        insert(app.backend, 3)
        jobs = app.backend.claims.claim(ClaimParams("w1", "default", 3, 30.0))
        assert len(jobs) == 3
        leases = [{"id": job.id, "attempt": job.attempt} for job in jobs]
        values = {
            "worker": "w1",
            "leases": json.dumps(leases),
            "ids": [job.id for job in jobs],
            "lease": 60.0,
            "now": None,
        }
        sql = app.backend.claims.q["heartbeat"]  # type: ignore[attr-defined]
        with psycopg.connect(pg_url) as conn:
            assert len(conn.execute(sql.encode(), values).fetchall()) == 3
            row = conn.execute(
                "SELECT pg_stat_get_xact_tuples_updated(c.oid),"
                " pg_stat_get_xact_tuples_hot_updated(c.oid)"
                " FROM pg_class AS c WHERE c.relname = 'offload_jobs'"
            ).fetchone()
            conn.rollback()
        assert row == (3, 3)
    finally:
        app.close()
