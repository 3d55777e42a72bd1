"""Work shaping at enqueue on both backends: unique keys (states, period, batches),
idempotency keys (retention, conflicts, transactions) and replace keys (supersede)."""

from __future__ import annotations

import time
from typing import Any

import psycopg
import pytest

import offload
from offload import DuplicateJob, IdempotencyConflict, JobState, Unique
from tests.conformance.helpers import RawDB, claim_one, finish_next, is_sqlite
from tests.conformance.test_transactional import caller_connection


def _count(db_url: str) -> int:
    return int(RawDB(db_url).scalar("SELECT count(*) FROM offload_jobs"))


def test_unique_true_keys_by_task_and_arguments_in_any_spelling(app: offload.App) -> None:
    @app.task(name="reindex", unique=True)
    def reindex(user: int, full: bool = False) -> None:
        return None

    first = reindex.enqueue(42)
    same = [
        reindex.enqueue(user=42),
        reindex.enqueue(42, False),
        reindex.enqueue(full=False, user=42),
    ]
    other = reindex.enqueue(42, full=True)
    assert not first.duplicate and not other.duplicate
    assert [h.id for h in same] == [first.id] * 3 and all(h.duplicate for h in same)
    assert other.id != first.id
    assert app.backend.jobs.get(first.id).unique_key == app.backend.jobs.get(same[0].id).unique_key


def test_a_unique_key_is_free_again_once_its_job_finished(app: offload.App) -> None:
    @app.task(name="sync", unique="sync:acme")
    def sync() -> None:
        return None

    first = sync.enqueue()
    assert sync.enqueue().id == first.id
    assert finish_next(app.backend, JobState.SUCCEEDED) == first.id
    second = sync.enqueue()
    assert not second.duplicate and second.id != first.id


def test_running_and_shed_jobs_hold_the_key_by_default(app: offload.App, db_url: str) -> None:
    @app.task(name="sync", unique="k")
    def sync() -> None:
        return None

    first = sync.enqueue()
    assert claim_one(app.backend).id == first.id  # running now
    assert sync.enqueue().id == first.id
    RawDB(db_url).execute("UPDATE offload_jobs SET state = 'shed', lease_until = NULL")
    assert sync.enqueue().id == first.id
    assert _count(db_url) == 1


def test_a_period_holds_the_key_after_the_job_finished(app: offload.App, db_url: str) -> None:
    @app.task(name="digest", unique=Unique(key="digest", period=3600))
    def digest() -> None:
        return None

    first = digest.enqueue()
    finish_next(app.backend, JobState.SUCCEEDED)
    again = digest.enqueue()
    assert again.duplicate and again.id == first.id
    # A period that has passed frees the key (enqueued_at moved back by two hours).
    RawDB(db_url).execute(
        "UPDATE offload_jobs SET enqueued_at = enqueued_at - 7200"
        if is_sqlite(db_url)
        else "UPDATE offload_jobs SET enqueued_at = enqueued_at - interval '2 hours'"
    )
    assert not digest.enqueue().duplicate
    assert _count(db_url) == 2


def test_states_and_period_must_both_hold(app: offload.App) -> None:
    rule = Unique(key="k", states=("available", "scheduled"), period=3600)

    @app.task(name="t", unique=rule)
    def t() -> None:
        return None

    first = t.enqueue()
    assert t.enqueue().id == first.id
    finish_next(app.backend, JobState.SUCCEEDED)  # in the period, not in the states
    assert not t.enqueue().duplicate


def test_on_duplicate_raise_names_the_holder_and_stores_nothing(
    app: offload.App, db_url: str
) -> None:
    @app.task(name="t", unique="k", on_duplicate="raise")
    def t(n: int) -> None:
        return None

    first = t.enqueue(1)
    with pytest.raises(DuplicateJob, match="unique key 'k' is held by job") as info:
        t.enqueue(2)
    assert (info.value.key, info.value.job_id, info.value.position) == ("k", first.id, None)
    assert t.options(on_duplicate="return").enqueue(3).id == first.id
    assert _count(db_url) == 1


def test_a_batch_reports_each_calls_outcome_by_position(app: offload.App, db_url: str) -> None:
    @app.task(name="t", unique=True)
    def t(n: int) -> None:
        return None

    held = t.enqueue(1)
    handles = t.enqueue_many([(0,), (1,), (2,), (0,), (3,)])
    assert [h.duplicate for h in handles] == [False, True, False, True, False]
    assert handles[1].id == held.id  # against a stored job: its holder
    assert handles[3].id == handles[0].id  # within the batch: the first of them
    assert len({h.id for h in handles}) == 4
    assert _count(db_url) == 4
    with pytest.raises(DuplicateJob, match=r"call 1: unique key .* an earlier call") as info:
        t.options(on_duplicate="raise").enqueue_many([(9,), (9,)])
    assert (info.value.job_id, info.value.position) == (None, 1)
    with pytest.raises(DuplicateJob, match=r"call 1: .* held by job") as info:
        t.options(on_duplicate="raise").enqueue_many([(8,), (1,)])
    assert info.value.job_id == held.id
    assert _count(db_url) == 4


def test_unique_false_drops_the_tasks_rule_for_one_call(app: offload.App) -> None:
    @app.task(name="t", unique="k")
    def t() -> None:
        return None

    first = t.enqueue()
    assert t.options(unique=False).enqueue().id != first.id


def test_a_hand_retry_keeps_its_key_even_when_another_job_holds_it(app: offload.App) -> None:
    @app.task(name="t", unique="k")
    def t() -> None:
        return None

    first = t.enqueue()
    app.cancel(first.id)
    second = t.enqueue()
    assert not second.duplicate
    retried = app.retry(first.id)  # uniqueness is checked at insert only
    assert retried.state is JobState.AVAILABLE and retried.unique_key == "k"
    assert t.enqueue().id in (first.id, second.id)


def test_an_idempotency_key_holds_after_the_job_finished(app: offload.App, db_url: str) -> None:
    @app.task(name="mail")
    def mail(order: int) -> None:
        return None

    first = mail.options(idempotency_key="order-42-mail").enqueue(42)
    finish_next(app.backend, JobState.SUCCEEDED)
    again = mail.options(idempotency_key="order-42-mail").enqueue(42)
    assert again.id == first.id and again.duplicate
    with pytest.raises(IdempotencyConflict) as info:
        mail.options(idempotency_key="order-42-mail").enqueue(43)
    assert (info.value.key, info.value.job_id) == ("order-42-mail", first.id)
    assert _count(db_url) == 1


def test_an_idempotency_key_of_another_task_conflicts(app: offload.App) -> None:
    @app.task(name="a")
    def a(n: int) -> None:
        return None

    @app.task(name="b")
    def b(n: int) -> None:
        return None

    a.options(idempotency_key="k").enqueue(1)
    with pytest.raises(IdempotencyConflict, match="'k'"):
        b.options(idempotency_key="k").enqueue(1)


def test_after_the_retention_an_idempotency_key_makes_a_new_job(db_url: str) -> None:
    app = offload.App(db_url, idempotency_retention=1.0)
    app.migrate()
    try:

        @app.task(name="mail")
        def mail(order: int) -> None:
            return None

        first = mail.options(idempotency_key="k").enqueue(1)
        assert mail.options(idempotency_key="k").enqueue(1).id == first.id
        time.sleep(1.5)
        later = mail.options(idempotency_key="k").enqueue(2)  # a new job: no conflict
        assert not later.duplicate and later.id != first.id
        assert mail.options(idempotency_key="k").enqueue(2).id == later.id
    finally:
        app.close()


def test_an_idempotency_key_from_a_committed_transaction_names_its_job(
    app: offload.App, db_url: str
) -> None:
    @app.task(name="mail")
    def mail(order: int) -> None:
        return None

    with caller_connection(db_url) as conn:
        mail.options(idempotency_key="gone", conn=conn).enqueue(1)
        conn.rollback()
        inside = mail.options(idempotency_key="k", conn=conn).enqueue(1)
        conn.commit()
    assert mail.options(idempotency_key="k").enqueue(1).id == inside.id
    assert not mail.options(idempotency_key="gone").enqueue(1).duplicate  # rolled back


def test_replace_cancels_queued_jobs_and_records_the_successor(app: offload.App) -> None:
    @app.task(name="reindex")
    def reindex(user: int) -> None:
        return None

    other = reindex.options(replace="reindex:user:7").enqueue(7)
    ids = [reindex.options(replace="reindex:user:42").enqueue(42).id for _ in range(3)]
    jobs = [app.backend.jobs.get(i) for i in ids]
    assert [j.state for j in jobs] == [JobState.CANCELLED, JobState.CANCELLED, JobState.AVAILABLE]
    assert [j.superseded_by for j in jobs] == [ids[1], ids[2], None]
    assert all(j.finished_at is not None for j in jobs[:2])
    assert app.backend.jobs.get(other.id).state is JobState.AVAILABLE
    batch = reindex.options(replace="reindex:user:42").enqueue_many([(1,), (2,)])
    states = [app.backend.jobs.get(h.id) for h in batch]
    assert [(j.state, j.superseded_by) for j in states] == [
        (JobState.CANCELLED, batch[1].id),
        (JobState.AVAILABLE, None),
    ]
    assert app.backend.jobs.get(ids[2]).superseded_by == batch[0].id


def test_replace_leaves_a_running_job_unless_asked(app: offload.App) -> None:
    @app.task(name="reindex")
    def reindex(user: int) -> None:
        return None

    running = reindex.options(replace="r").enqueue(1)
    assert claim_one(app.backend).id == running.id
    reindex.options(replace="r").enqueue(2)
    job = app.backend.jobs.get(running.id)
    assert (job.state, job.cancel_requested, job.superseded_by) == (JobState.RUNNING, False, None)
    latest = reindex.options(replace="r", replace_running=True).enqueue(3)
    job = app.backend.jobs.get(running.id)
    assert (job.state, job.cancel_requested, job.superseded_by) == (
        JobState.RUNNING,
        True,
        latest.id,
    )


def test_a_repeatable_read_transaction_is_refused_for_keyed_enqueues(pg_url: str) -> None:
    """PostgreSQL only (SQLite has no isolation levels): an older snapshot than the lock's
    would miss holders, so a keyed enqueue refuses it, storing nothing."""
    app = offload.App(pg_url)
    app.migrate()

    @app.task(name="t", unique="k")
    def t() -> None:
        return None

    try:
        for level in ("REPEATABLE READ", "SERIALIZABLE"):
            with psycopg.connect(pg_url) as conn:
                conn.execute(f"SET TRANSACTION ISOLATION LEVEL {level}")
                with pytest.raises(offload.ConfigurationError, match=f"READ COMMITTED.*{level}"):
                    t.options(conn=conn).enqueue()
                conn.rollback()
        with psycopg.connect(pg_url) as conn:  # READ COMMITTED, the default: stored
            t.options(conn=conn).enqueue()
    finally:
        app.close()
    assert _count(pg_url) == 1


KEY_OPTIONS: list[tuple[str, dict[str, Any], str]] = [
    ("idempotency over", {"idempotency_key": "x" * 256}, "idempotency_key must be 1 to 255"),
    ("idempotency empty", {"idempotency_key": ""}, "idempotency_key must be 1 to 255"),
    ("idempotency type", {"idempotency_key": 5}, "idempotency_key must be a str, got 5"),
    ("unique over", {"unique": "x" * 256}, "unique must be 1 to 255 characters, got 256"),
    ("unique type", {"unique": 5}, "unique must be True, a key"),
    ("replace over", {"replace": "x" * 256}, "replace must be 1 to 255"),
    ("replace surrogate", {"replace": "a\ud800"}, "replace 'a\\\\ud800' contains a lone surrogate"),
    ("on_duplicate", {"on_duplicate": "ignore"}, "on_duplicate must be 'return' or 'raise'"),
    ("replace_running", {"replace_running": 1}, "replace_running must be True or False"),
]


@pytest.mark.parametrize(
    ("case", "options", "message"), KEY_OPTIONS, ids=[c[0] for c in KEY_OPTIONS]
)
@pytest.mark.usefixtures("stored")
def test_bad_key_options_are_refused_and_store_nothing(
    echo: offload.Task[..., Any], case: str, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(offload.ValidationError, match=message):
        echo.options(**options).enqueue(1)


UNIQUE_RULES: list[tuple[dict[str, Any], str]] = [
    ({"key": "x" * 256}, "Unique key must be 1 to 255"),
    ({"states": ("queued",)}, "unknown job state 'queued'"),
    ({"states": ()}, "at least one state"),
    ({"states": "available"}, "sequence of states"),
    ({"states": ("succeeded",)}, "succeeded are finished: without a period"),
    ({"period": -1}, "period must be a finite number > 0, got -1"),
    ({"period": float("nan")}, "period must be a finite number > 0"),
    ({"period": "1h"}, "period must be seconds"),
]


@pytest.mark.parametrize(("fields", "message"), UNIQUE_RULES)
def test_bad_unique_rules_are_refused(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(offload.ValidationError, match=message):
        Unique(**fields)


def test_a_bad_unique_option_at_declaration_is_a_configuration_error(app: offload.App) -> None:
    with pytest.raises(offload.ConfigurationError, match="unique must be True"):
        app.task(name="t", unique=3)  # type: ignore[call-overload]
    with pytest.raises(offload.ConfigurationError, match="on_duplicate"):
        app.task(name="t", on_duplicate="skip")
    with pytest.raises(offload.ValidationError, match="idempotency_retention"):
        offload.App("sqlite:///:memory:", idempotency_retention=0)
