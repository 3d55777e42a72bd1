"""The web framework examples (examples/fastapi_app, starlette_app, flask_app), on both
backends: a test client posts to a route, the job runs (with the testing helpers, or a
real `offload worker --burst` process on the same database), and the result is read back
through offload's HTTP API mounted in the host app."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

import offload
from offload.testing import harness

ROOT = Path(__file__).resolve().parents[2]
SRC = Path(offload.__file__).resolve().parents[1]


def run_worker(app_path: str, url: str, queues: str = "default") -> None:
    """A real worker process on `url` that runs every due job and exits."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OFFLOAD_")}
    env["OFFLOAD_URL"] = url
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), str(ROOT)])
    done = subprocess.run(
        [sys.executable, "-m", "offload", "--app", app_path, "worker", "--burst", "-q", queues],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def job_via_api(get: Callable[[str], Any], job_id: int) -> dict[str, Any]:
    response = get(f"/offload/v1/jobs/{job_id}")
    assert response.status_code == 200, response.text
    found: dict[str, Any] = json.loads(response.text)  # httpx's and werkzeug's responses
    return found


@pytest.mark.parametrize("runner", ["testing", "worker"])
def test_fastapi_example(db_url: str, runner: str) -> None:
    from examples.fastapi_app import app as example

    with harness(example.jobs, url=db_url) as jobs, TestClient(example.web) as client:
        refused = client.post("/orders", json={"sku": "mug", "quantity": 0})
        assert refused.status_code == 422  # FastAPI's own validation, from the same model
        response = client.post("/orders", json={"sku": "mug", "quantity": 2})
        assert response.status_code == 202, response.text
        job_id = response.json()["job_id"]
        jobs.assert_enqueued(example.ship, args=[{"sku": "mug", "quantity": 2}])
        if runner == "testing":
            jobs.drain()
        else:
            run_worker("examples.fastapi_app.app:jobs", db_url)
        job = job_via_api(client.get, job_id)
        assert job["state"] == "succeeded"
        assert job["result"] == {"shipped": "mug", "quantity": 2}


@pytest.mark.parametrize("runner", ["testing", "worker"])
def test_starlette_example(db_url: str, runner: str) -> None:
    from examples.starlette_app import app as example

    with harness(example.jobs, url=db_url) as jobs, TestClient(example.web) as client:
        response = client.post("/signup", json={"email": "ada@example.org"})
        assert response.status_code == 202, response.text
        body = response.json()
        assert body["site"] == "example"  # the host's own lifespan ran inside offload's
        jobs.assert_enqueued(example.send_welcome, args=["ada@example.org"], queue="mail")
        if runner == "testing":
            jobs.drain()
        else:
            run_worker("examples.starlette_app.app:jobs", db_url, queues="mail")
        job = job_via_api(client.get, body["job_id"])
        assert (job["state"], job["result"]) == ("succeeded", "welcome mail to ada@example.org")


@pytest.mark.parametrize("runner", ["testing", "worker"])
def test_flask_example(db_url: str, runner: str) -> None:
    from examples.flask_app import app as example

    with harness(example.jobs, url=db_url) as jobs:
        client = example.create_app().test_client()
        response = client.post("/thumbnails", json={"image": "cat.jpg", "width": 64})
        assert response.status_code == 202, response.text
        body = response.get_json()
        assert body["backend"] == example.jobs.backend.name  # the harness's database
        jobs.assert_enqueued(example.thumbnail, args=["cat.jpg"], kwargs={"width": 64})
        if runner == "testing":
            jobs.drain()
        else:
            run_worker("examples.flask_app.app:jobs", db_url)
        job = job_via_api(client.get, body["job_id"])
        assert (job["state"], job["result"]) == ("succeeded", "cat-64.png")


def test_the_lifespan_closes_the_app_and_stops_the_mounted_api(tmp_path: Path) -> None:
    from starlette.applications import Starlette
    from starlette.routing import Mount

    from offload.contrib.asgi import lifespan

    app = offload.App(f"sqlite:///{tmp_path / 'jobs.db'}")
    api = offload.asgi(app, auth=False)
    stopped: list[str] = []
    real_stop = api.router.lifespan_context

    def watched(host: Any) -> Any:
        stopped.append("api lifespan entered")
        return real_stop(host)

    api.router.lifespan_context = watched
    web = Starlette(routes=[Mount("/offload", app=api)], lifespan=lifespan(app, api=api))
    closed: list[bool] = []
    real_close = app.close

    def close() -> None:
        closed.append(True)
        real_close()

    app.close = close  # type: ignore[method-assign]
    with TestClient(web) as client:
        assert client.get("/offload/health").status_code == 200
        assert closed == []
    assert stopped == ["api lifespan entered"]
    assert closed == [True]


def test_a_database_out_of_reach_fails_the_start(tmp_path: Path) -> None:
    from starlette.applications import Starlette

    from offload.contrib.asgi import lifespan

    app = offload.App(f"sqlite:///{tmp_path / 'missing-dir' / 'jobs.db'}")
    web = Starlette(lifespan=lifespan(app))
    with pytest.raises(offload.BackendError), TestClient(web):
        pass


def test_bad_arguments_are_named(tmp_path: Path) -> None:
    from flask import Flask

    from offload.contrib.asgi import lifespan
    from offload.contrib.flask import Offload

    app = offload.App(f"sqlite:///{tmp_path / 'jobs.db'}")
    with pytest.raises(offload.ConfigurationError, match=r"takes an offload\.App"):
        lifespan("not an app")  # type: ignore[arg-type]
    with pytest.raises(offload.ConfigurationError, match="api must be the Starlette app"):
        lifespan(app, api=object())
    with pytest.raises(offload.ConfigurationError, match="no option 'auht'; did you mean 'auth'"):
        Offload(app, Flask(__name__), api_options={"auht": False})
    with pytest.raises(offload.ConfigurationError, match="mount must be a path"):
        Offload(app, mount="offload/")


def test_flask_without_mount_keeps_the_extension_only(tmp_path: Path) -> None:
    from flask import Flask

    from offload.contrib.flask import Offload

    app = offload.App(f"sqlite:///{tmp_path / 'jobs.db'}")
    web = Flask(__name__)
    original = web.wsgi_app
    extension = Offload(app, mount=None)
    extension.init_app(web)
    assert web.extensions["offload"] is extension
    assert web.wsgi_app == original


def test_flask_mounts_the_api_open_only_when_told(tmp_path: Path) -> None:
    """As `offload serve` beyond loopback: with no token the mount is refused unless
    `auth` False is said; with a token, every route of the mount needs it."""
    from flask import Flask

    from offload.contrib.flask import Offload

    app = offload.App(f"sqlite:///{tmp_path / 'jobs.db'}")
    app.migrate()
    with pytest.raises(offload.ConfigurationError, match="no API token"):
        Offload(app, Flask(__name__))
    token = app.create_token("site", "admin")
    web = Flask(__name__)
    Offload(app, web)
    client = web.test_client()
    body = {"task": "anything", "args": []}
    assert client.post("/offload/v1/jobs", json=body).status_code == 401
    assert client.get("/offload/v1/jobs").status_code == 401
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/offload/v1/jobs", headers=headers).status_code == 200
    assert app.count_jobs() == 0
