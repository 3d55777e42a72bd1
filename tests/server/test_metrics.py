"""`/metrics` of the HTTP API, on both backends: the census gauges match a known set of jobs
and workers, the enqueue counters match what went through this process, every family is
one the catalogue names with exactly its labels, and series stay bounded."""

from __future__ import annotations

from datetime import timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

import offload
from offload.core.metrics import METRICS, OTHER, MetricSpec
from offload.core.records import WorkerInfo
from offload.server.metrics import ApiMetrics
from tests.cli.helpers import UNREACHABLE_PG
from tests.conformance.helpers import RawDB
from tests.server.conftest import Api

Series = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(api: Api, **headers: str) -> Series:
    """GET /metrics through the checking client, parsed by prometheus_client: each sample's
    value by (name, sorted labels). Every family must be in the catalogue, with its labels."""
    response = api.call("GET", "/metrics", headers=headers or None)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    found: Series = {}
    for family in text_string_to_metric_families(response.text):
        spec = _spec(family.name, family.type)
        if spec is None:  # the creation time prometheus_client adds to a counter
            continue
        assert family.type == spec.kind, family.name
        for sample in family.samples:
            _check_labels(sample, spec.labels)
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def _spec(family: str, kind: str) -> MetricSpec | None:
    """The catalogue's metric of a parsed family; None for the `_created` gauge that
    prometheus_client adds beside each counter and histogram of the catalogue."""
    if kind == "counter":
        return METRICS[family + "_total"]
    base = family.removesuffix("_created")
    if base != family and (base + "_total" in METRICS or base in METRICS):
        return None
    return METRICS[family]


def _check_labels(sample: Sample, labels: tuple[str, ...]) -> None:
    """A sample carries its metric's labels and nothing else (a bucket adds `le`)."""
    extra = {"le"} if sample.name.endswith("_bucket") else set()
    assert set(sample.labels) == set(labels) | extra, sample


def value(found: Series, name: str, **labels: str) -> float:
    return found[(name, tuple(sorted(labels.items())))]


def names(found: Series, name: str) -> list[dict[str, str]]:
    """The label sets of every sample called `name`."""
    return [dict(labels) for sample, labels in found if sample == name]


def _worker(app: offload.App, pid: int, slots: int) -> None:
    now = app.backend.now()
    app.backend.workers.register(WorkerInfo(f"h:{pid}", "h", pid, ["default"], slots, now, now))


def test_scrape_matches_a_known_set_of_jobs_and_workers(
    api: Api, tasks_app: offload.App, db_url: str
) -> None:
    for n in range(3):
        assert api.call("POST", "/v1/jobs", json={"task": "add", "args": [n, 1]}).status_code == 202
    batch = {"task": "echo", "queue": "mail", "jobs": [{"args": [1]}, {"args": [2]}]}
    assert api.call("POST", "/v1/jobs:batch", json=batch).status_code == 202
    delayed = {"task": "echo", "queue": "mail", "delay": 600}
    assert api.call("POST", "/v1/jobs", json=delayed).status_code == 202
    tasks_app.enqueue("add", [9, 9])  # not through the API: in the gauges, not the counter
    raw = RawDB(db_url)
    back: object = 120 if raw.sqlite else timedelta(seconds=120)
    raw.execute("UPDATE offload_jobs SET run_at = run_at - ? WHERE queue = 'default'", [back])
    _worker(tasks_app, 1, 4)
    _worker(tasks_app, 2, 2)
    _worker(tasks_app, 3, 8)
    hour: object = 3600 if raw.sqlite else timedelta(hours=1)
    raw.execute("UPDATE offload_workers SET heartbeat_at = heartbeat_at - ? WHERE pid = 3", [hour])

    found = scrape(api)

    assert value(found, "offload_queue_jobs", queue="default", state="available") == 4
    assert value(found, "offload_queue_jobs", queue="mail", state="available") == 2
    assert value(found, "offload_queue_jobs", queue="mail", state="scheduled") == 1
    assert len(names(found, "offload_queue_jobs")) == 3
    assert 120 <= value(found, "offload_queue_oldest_age_seconds", queue="default") < 180
    assert 0 <= value(found, "offload_queue_oldest_age_seconds", queue="mail") < 60
    assert value(found, "offload_jobs_enqueued_total", queue="default", task="add") == 3
    assert value(found, "offload_jobs_enqueued_total", queue="mail", task="echo") == 3
    assert len(names(found, "offload_jobs_enqueued_total")) == 2
    assert value(found, "offload_workers", state="alive") == 2
    assert value(found, "offload_workers", state="lost") == 1
    assert value(found, "offload_worker_slots") == 6
    assert names(found, "offload_jobs_rejected_total") == []


def test_gauges_follow_the_database_between_scrapes(api: Api, tasks_app: offload.App) -> None:
    """Nothing is cached: a job that finished moves between states from one scrape to the
    next, and an empty database exports zeros for the workers and no queue series."""
    empty = scrape(api)
    assert names(empty, "offload_queue_jobs") == []
    assert value(empty, "offload_workers", state="alive") == 0
    handle = tasks_app.enqueue("add", [1, 2])
    assert value(scrape(api), "offload_queue_jobs", queue="default", state="available") == 1
    tasks_app.cancel(handle.id)
    after = scrape(api)
    assert value(after, "offload_queue_jobs", queue="default", state="cancelled") == 1
    assert ("offload_queue_jobs", (("queue", "default"), ("state", "available"))) not in after
    assert value(after, "offload_queue_oldest_age_seconds", queue="default") == 0


def test_duplicates_are_not_counted_and_back_pressure_is(api: Api, tasks_app: offload.App) -> None:
    tasks_app.queue("tight", max_depth=1)
    body = {"task": "add", "args": [1, 2], "queue": "tight"}
    key = {"Idempotency-Key": "once"}
    assert api.call("POST", "/v1/jobs", json=body, headers=key).status_code == 202
    assert api.call("POST", "/v1/jobs", json=body, headers=key).status_code == 200  # duplicate
    full = api.call("POST", "/v1/jobs", json=body)
    assert full.status_code == 503
    batch = {"task": "add", "queue": "tight", "jobs": [{"args": [1, 2]}]}
    assert api.call("POST", "/v1/jobs:batch", json=batch).status_code == 503

    found = scrape(api)
    assert value(found, "offload_jobs_enqueued_total", queue="tight", task="add") == 1
    assert value(found, "offload_jobs_rejected_total", queue="tight", reason="full") == 2
    assert value(found, "offload_queue_jobs", queue="tight", state="available") == 1


def test_scrape_needs_the_read_scope_when_tokens_are_checked(tasks_app: offload.App) -> None:
    reader = tasks_app.create_token("reader", ["read"])
    producer = tasks_app.create_token("producer", ["enqueue"])
    guarded = Api(offload.asgi(tasks_app))
    assert guarded.call("GET", "/metrics").status_code == 401
    refused = guarded.call("GET", "/metrics", headers={"Authorization": f"Bearer {producer}"})
    assert refused.status_code == 403
    assert "read scope" in refused.json()["message"]
    found = scrape(guarded, Authorization=f"Bearer {reader}")
    assert value(found, "offload_workers", state="alive") == 0


def test_an_unreachable_database_answers_503_not_a_partial_scrape() -> None:
    app = offload.App(UNREACHABLE_PG)
    try:
        answer = Api(offload.asgi(app, auth=False)).call("GET", "/metrics")
    finally:
        app.close()
    assert answer.status_code == 503
    assert answer.json()["type"] == "backend_unavailable"


def test_enqueue_counters_keep_a_bounded_number_of_series(tasks_app: offload.App) -> None:
    metrics = ApiMetrics(tasks_app, series_limit=3)
    for n in range(10):
        metrics.enqueued(f"q{n}", "add", 2)
    samples = {
        tuple(sorted(s.labels.items())): s.value
        for family in text_string_to_metric_families(metrics.render().decode())
        if family.name == "offload_jobs_enqueued"
        for s in family.samples
        if s.name == "offload_jobs_enqueued_total"
    }
    assert samples == {
        (("queue", "q0"), ("task", "add")): 2,
        (("queue", "q1"), ("task", "add")): 2,
        (("queue", "q2"), ("task", "add")): 2,
        (("queue", OTHER), ("task", OTHER)): 14,
    }


@pytest.mark.parametrize("name", sorted(METRICS))
def test_the_catalogue_names_follow_prometheus_conventions(name: str) -> None:
    spec = METRICS[name]
    assert name.startswith("offload_")
    assert name.endswith("_total") == (spec.kind == "counter")
    assert "id" not in spec.labels and "args" not in spec.labels
    assert spec.help.endswith(".")
