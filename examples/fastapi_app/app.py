"""FastAPI with offload: a route validates a request body with pydantic, enqueues a task
that takes the same model, and offload's HTTP API is mounted under /offload. Run it from
the repository's root:

    export OFFLOAD_URL=sqlite:///shop.db
    offload --app examples.fastapi_app.app:jobs worker &
    uvicorn examples.fastapi_app.app:web

then `curl -X POST localhost:8000/orders -H 'content-type: application/json'
-d '{"sku": "mug", "quantity": 2}'` and follow the job at /offload/jobs/{id}.

With the OpenTelemetry SDK set up in both processes (and the web app instrumented, e.g.
by opentelemetry-instrumentation-fastapi), each job's `process` span is in the trace of
the request that enqueued it; without the SDK the middleware records nothing.
"""

from __future__ import annotations

import os

from fastapi import FastAPI
from pydantic import BaseModel, Field

import offload
from offload.contrib.asgi import lifespan
from offload.contrib.otel import TracingMiddleware

jobs = offload.App(os.environ.get("OFFLOAD_URL"), middleware=[TracingMiddleware()])


class Order(BaseModel):
    sku: str
    quantity: int = Field(gt=0)


@jobs.task(name="shop.ship")
def ship(order: Order) -> dict[str, object]:
    """Ship an order (the model is rebuilt from the job's JSON)."""
    return {"shipped": order.sku, "quantity": order.quantity}


api = offload.asgi(jobs, auth=False)
web = FastAPI(lifespan=lifespan(jobs, api=api))
web.mount("/offload", api)


@web.post("/orders", status_code=202)
async def create_order(order: Order) -> dict[str, int]:
    """Take an order: its job is durable when this answers."""
    handle = await ship.enqueue_async(order)
    return {"job_id": handle.id}
