"""Integrations with web frameworks (public): `offload.contrib.asgi` for Starlette and
FastAPI, `offload.contrib.flask` for Flask. Each needs its framework installed; importing
this package does not."""
