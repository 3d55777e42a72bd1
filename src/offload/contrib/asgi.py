"""Starlette and FastAPI: open and close an offload App with the host application.

    from offload.contrib.asgi import lifespan

    api = offload.asgi(jobs, auth=True)                 # the HTTP API, to mount
    web = FastAPI(lifespan=lifespan(jobs, api=api))     # or Starlette(lifespan=...)
    web.mount("/offload", api)

At start-up the App's database is checked (reachable, schema current: a host that cannot
reach it fails to start instead of failing its first request); at shutdown the mounted API
is stopped (its event streams end) and the App's connections are closed. Route handlers
enqueue with `await task.enqueue_async(...)`, which commits off the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any

from offload.app import App
from offload.core.errors import ConfigurationError, shorten

#: A lifespan as Starlette and FastAPI take it: the host app in, a context manager out,
#: whose value (a mapping) becomes `request.state`.
Lifespan = Callable[[Any], AbstractAsyncContextManager[Mapping[str, Any]]]
#: The host's own lifespan, run inside offload's (it may yield no state).
HostLifespan = Callable[[Any], AbstractAsyncContextManager[Mapping[str, Any] | None]]


def lifespan(
    app: App,
    *,
    api: Any = None,
    inner: HostLifespan | None = None,
    check: bool = True,
) -> Lifespan:
    """A lifespan that opens `app` with the host and closes it after.

    `api`: the HTTP API (`offload.asgi(app)`) mounted in the host, whose own lifespan a
    mounted app does not get: it runs inside this one. `inner`: the host's own lifespan,
    run inside too (its state is kept). `check`: check the database at start-up. The state
    gets `offload` (the App): `request.state.offload` in a handler.
    """
    if not isinstance(app, App):
        raise ConfigurationError(f"lifespan takes an offload.App, got {shorten(app)}")
    if api is not None and not hasattr(getattr(api, "router", None), "lifespan_context"):
        raise ConfigurationError(
            f"api must be the Starlette app offload.asgi(app) returns, got {shorten(api)}"
        )

    @asynccontextmanager
    async def run(host: Any) -> AsyncIterator[Mapping[str, Any]]:
        async with AsyncExitStack() as stack:
            if check:
                await asyncio.to_thread(app.check)
            stack.callback(app.close)
            if api is not None:
                await stack.enter_async_context(api.router.lifespan_context(api))
            state: dict[str, Any] = {}
            if inner is not None:
                given: Mapping[str, Any] | None = await stack.enter_async_context(inner(host))
                state.update(given or {})
            state["offload"] = app
            yield state

    return run


__all__ = ["HostLifespan", "Lifespan", "lifespan"]
