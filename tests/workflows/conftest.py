"""Workflow tests use the worker-process fixtures of tests.runtime."""

from tests.runtime.conftest import basic_app, start_worker  # noqa: F401  (fixtures used here)
