"""`offload.server.dashboard(app)`: the dashboard without the API's routes and without a
sign-in of its own, for a host that guards it (Django's staff), on both backends."""

from __future__ import annotations

import pytest

import offload
from offload.server import dashboard
from tests.server.dashboard import Dash, fill
from tests.server.test_dashboard import PAGES


def test_pages_render_and_actions_keep_their_csrf_check(app: offload.App) -> None:
    filled = fill(app)
    dash = Dash(dashboard(app))
    for path in [*PAGES, f"/jobs/{filled.dead}"]:
        answer = dash.get(path)
        assert answer.status_code == 200, (path, answer.text[:300])
    assert "Sign in" not in dash.get("/").text
    refused = dash.post(f"/jobs/{filled.dead}/retry", token=False)
    assert refused.status_code == 403
    assert app.job(filled.dead).status() == "dead"
    assert dash.post(f"/jobs/{filled.dead}/retry").status_code == 303
    assert app.job(filled.dead).status() == "available"


def test_the_apis_routes_are_not_there(app: offload.App) -> None:
    dash = Dash(dashboard(app))
    for path in ("/v1/jobs", "/v1/queues", "/metrics", "/openapi.json", "/health"):
        assert dash.get(path).status_code == 404, path
    assert dash.request("POST", "/v1/jobs", json={"task": "x"}).status_code == 404


@pytest.mark.parametrize("bad", [0, -1, True, "10"])
def test_a_bad_event_buffer_is_named(app: offload.App, bad: object) -> None:
    with pytest.raises(offload.ConfigurationError, match="event_buffer must be a positive int"):
        dashboard(app, event_buffer=bad)  # type: ignore[arg-type]
