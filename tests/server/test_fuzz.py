"""RELIABILITY 31, API fuzz: schemathesis generates requests from the `/openapi.json` the
server serves, fitting it (positive) and breaking it (negative), on both backends and with
bearer tokens. Pass: 0 answers 5xx; 0 answers off the document (status, content type,
headers, body schema); every request breaking the document refused; and the stored jobs,
read through the App before and after each request, change only through accepted ones,
each as it says, so the jobs at the end are exactly the ones accepted enqueues stored.

Sizes: `sized(ci, full)`; the full size is 10,000 cases (OFFLOAD_TEST_FULL=1).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import APIOperation, Case, GenerationMode, Response
from schemathesis.checks import (
    CheckFunction,
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

import offload
from offload.core.tokens import Scope
from offload.server.openapi import SCOPES
from tests.server.conftest import with_tasks
from tests.sizes import sized

#: Cases per run: (backend, mode) -> count. CI: 2,000 in all with AUTH_CASES (about 60 s
#: of CPU, most of it generating requests); full: 10,000.
CASES = {
    ("sqlite", GenerationMode.POSITIVE): sized(600, 3500),
    ("sqlite", GenerationMode.NEGATIVE): sized(600, 3500),
    ("postgres", GenerationMode.POSITIVE): sized(200, 1250),
    ("postgres", GenerationMode.NEGATIVE): sized(200, 1250),
}
#: Cases against a server checking tokens, each sent with a drawn token (or none).
AUTH_CASES = sized(400, 500)
#: Every answer must pass these; a negative case must also be refused.
CHECKS: list[CheckFunction] = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
#: Task names an enqueue is steered to (positive cases), so that some are stored.
TASKS = ["echo", "echo", "add"]
#: Text a positive case's names, keys and filters are sometimes steered to: what a
#: database or an encoder may choke on, each a valid JSON string within the document.
TRICKY = ["a\x00b", "'; DROP TABLE offload_jobs;--", "%_%", "\u202e\U0001f600", "x" * 255]
#: ... and text a JSON body may carry but a URL may not (a lone surrogate).
TRICKY_BODY = [*TRICKY, "\ud800"]
#: The fields and query parameters steered to tricky text.
TEXT_FIELDS = ("task", "queue", "unique", "replace")
#: The routes that store or change jobs when they accept, by (method, path template).
CHANGING = {(path, m.upper()) for (path, m) in SCOPES if m == "post"}

Snapshot = dict[int, dict[str, Any]]
ApiCase = Case[APIOperation[Any, Any, Any, Any]]


def snapshot(app: offload.App) -> Snapshot:
    """Every stored job, read through the App, by id."""
    return {job.id: job.to_dict() for job in app.jobs(limit=10**9)}


@dataclasses.dataclass
class Ledger:
    """What the fuzz run saw: answers by status, the ids accepted enqueues stored, and
    every way the stored jobs changed that the request's answer does not explain."""

    statuses: dict[int, int] = dataclasses.field(default_factory=dict)
    stored: set[int] = dataclasses.field(default_factory=set)
    faults: list[str] = dataclasses.field(default_factory=list)

    @property
    def cases(self) -> int:
        return sum(self.statuses.values())

    def record(self, case: ApiCase, response: Response, before: Snapshot, after: Snapshot) -> None:
        """Check the change from `before` to `after` against what `response` accepted."""
        status = response.status_code
        self.statuses[status] = self.statuses.get(status, 0) + 1
        where = f"{case.method} {case.formatted_path} -> {status}"
        if status >= 300 or (case.operation.path, case.method.upper()) not in CHANGING:
            if after != before:
                self.faults.append(f"{where}: stored jobs changed ({_diff(before, after)})")
            return
        added, removed = set(after) - set(before), set(before) - set(after)
        new, touched = self._accepted(case, response)
        self.stored |= new
        if removed or added != new:
            self.faults.append(f"{where}: added {added}, removed {removed}, answered {new}")
        changed = {i for i in set(before) & set(after) if before[i] != after[i]}
        if touched is not None and not changed <= touched:
            self.faults.append(f"{where}: changed {changed - touched}, answered {touched}")

    @staticmethod
    def _accepted(case: ApiCase, response: Response) -> tuple[set[int], set[int] | None]:
        """The ids an accepted answer says it stored, and the stored jobs it may change
        (None: any, as a stored job's `replace` key cancels others)."""
        body = response.json()
        path = case.operation.path
        if path == "/v1/jobs":  # 200: a key holder answered, nothing changed
            return ({body["id"]}, None) if response.status_code == 202 else (set(), set())
        if path == "/v1/jobs:batch":
            return {j["id"] for j in body["jobs"] if not j["duplicate"]}, None
        if path == "/v1/workflows":  # its nodes' jobs, and nothing else
            return set(body["nodes"].values()), set()
        if path in ("/v1/jobs:cancel", "/v1/jobs:retry", "/v1/workflows/{workflow_id}/cancel"):
            return set(), {c["id"] for c in body["changed"]}
        return set(), {body["id"]}  # one job's cancel or retry


def _diff(before: Snapshot, after: Snapshot) -> str:
    ids = sorted(i for i in set(before) | set(after) if before.get(i) != after.get(i))
    return f"jobs {ids[:10]}"


#: The operations of the event streams (server-sent events).
STREAMS = ["job_events", "events"]


def fuzz(
    app: offload.App,
    api: Any,
    mode: GenerationMode,
    cases: int,
    authorize: Callable[[ApiCase, Any], bool] | None = None,
) -> Ledger:
    """Run `cases` generated requests against `api` (the ASGI app of `app`), checking each
    answer and each change of the stored jobs; the ledger of what was seen. `authorize`
    gives a case its token and says whether that token allows the route: if not, the
    answer must be 401 or 403."""
    # The event streams are left out: a stream answers without end (a job's, until the
    # job finishes), so a generated call would wait for ever; tests/server/test_events.py
    # checks them over real HTTP, bad Last-Event-IDs included.
    schema = schemathesis.openapi.from_asgi("/openapi.json", api).exclude(operation_id=STREAMS)
    checks = CHECKS + ([negative_data_rejection] if mode.is_negative else [])
    ledger = Ledger()
    state = {"jobs": snapshot(app)}

    @settings(
        max_examples=cases,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=schema.as_strategy(mode), data=st.data())
    def one(case: ApiCase, data: Any) -> None:
        if mode.is_positive:
            _steer(case, data, sorted(ledger.stored))
        allowed = authorize is None or authorize(case, data)
        before = state["jobs"]
        response = case.call()
        state["jobs"] = snapshot(app)
        ledger.record(case, response, before, state["jobs"])
        case.validate_response(response, checks=checks)
        assert allowed or response.status_code in (401, 403), response.text[:300]

    one()
    assert not ledger.faults, "\n".join(ledger.faults[:20])
    assert set(state["jobs"]) == ledger.stored, "stored jobs differ from the accepted ones"
    return ledger


def _steer(case: ApiCase, data: Any, known: list[int]) -> None:
    """Point a positive case at stored things sometimes: a registered task by name, a job
    id an earlier request stored; and sometimes give its text fields tricky text. All stay
    within the document, so the case stays positive; without them nearly every enqueue
    would name an unknown task, and NUL or a lone surrogate in a key would be rare."""
    body = case.body if isinstance(case.body, dict) else {}
    nodes = body.get("nodes")
    for item in [body, *(nodes if isinstance(nodes, list) else [])]:  # nodes name tasks too
        if isinstance(item, dict) and isinstance(item.get("task"), str):
            item["task"] = data.draw(st.sampled_from([*TASKS, item["task"]]))
    for container, tricky in ((body, TRICKY_BODY), (case.query or {}, TRICKY)):
        for name in TEXT_FIELDS:
            if isinstance(container.get(name), str) and data.draw(st.integers(0, 9)) == 0:
                container[name] = data.draw(st.sampled_from(tricky))
    if "job_id" in case.path_parameters:
        # Drawn whether or not ids are stored yet, and from a fixed range: the stored ids
        # come from earlier cases, and hypothesis refuses draws that differ, in number or
        # bounds, between runs of the same choices (FlakyStrategyDefinition).
        choices = [*known[-20:], case.path_parameters["job_id"]]
        case.path_parameters["job_id"] = choices[data.draw(st.integers(0, 20)) % len(choices)]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_fuzz_finds_no_5xx_no_off_document_answer_and_no_unaccepted_change(
    app: offload.App, db_url: str, mode: GenerationMode
) -> None:
    backend = "sqlite" if db_url.startswith("sqlite") else "postgres"
    cases = CASES[(backend, mode)]
    ledger = fuzz(with_tasks(app), offload.asgi(app), mode, cases)
    assert ledger.cases == cases
    if mode.is_positive:  # the steering works: the run stored jobs and refused some
        assert len(ledger.stored) > 0
        assert any(400 <= s < 500 for s in ledger.statuses), ledger.statuses


def test_fuzz_with_tokens_changes_nothing_without_the_scope(sqlite_url: str) -> None:
    """A server checking tokens, each request with no token, a wrong one, or a token of one
    scope: on top of the checks above, a token never opens a route beyond its scope."""
    app = offload.App(sqlite_url)
    try:
        app.migrate()
        tokens = {app.create_token(f"fuzz-{s.value}", [s]): s for s in Scope}
        choices: list[str | None] = [None, "not-a-token", *tokens]
        seen: set[str | None] = set()

        def authorize(case: ApiCase, data: Any) -> bool:
            token = data.draw(st.sampled_from(choices))
            seen.add(token)
            case.headers.pop("Authorization", None)
            if token is not None:
                case.headers["Authorization"] = f"Bearer {token}"
            needed = SCOPES[(case.operation.path, case.method.lower())]
            scope = tokens.get(token or "")
            return needed is None or (scope is not None and scope in (needed, Scope.ADMIN))

        ledger = fuzz(
            with_tasks(app), offload.asgi(app), GenerationMode.POSITIVE, AUTH_CASES, authorize
        )
        assert ledger.cases == AUTH_CASES
        assert {401, 403} <= set(ledger.statuses), ledger.statuses
        assert seen == set(choices)
    finally:
        app.close()
