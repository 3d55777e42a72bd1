"""Flask with offload: a view enqueues a task, and offload's HTTP API answers under
/offload through the a2wsgi adapter. Run it from the repository's root:

    export OFFLOAD_URL=sqlite:///thumbs.db
    offload --app examples.flask_app.app:jobs worker &
    flask --app examples.flask_app.app:web run
"""

from __future__ import annotations

import os

from flask import Flask, current_app, jsonify, request
from flask.typing import ResponseReturnValue

import offload
from offload.contrib.flask import Offload

jobs = offload.App(os.environ.get("OFFLOAD_URL"))


@jobs.task(name="images.thumbnail")
def thumbnail(image: str, width: int = 128) -> str:
    """Make a thumbnail (here: name the file it would write)."""
    return f"{image.rsplit('.', 1)[0]}-{width}.png"


def create_app() -> Flask:
    """The Flask app, with the extension on it."""
    web = Flask(__name__)
    Offload(jobs, web, api_options={"auth": False})

    @web.post("/thumbnails")
    def make_thumbnail() -> ResponseReturnValue:
        body = request.get_json()
        handle = thumbnail.enqueue(body["image"], width=int(body.get("width", 128)))
        app = current_app.extensions["offload"].app
        return jsonify(job_id=handle.id, backend=app.backend.name), 202

    return web
