"""The election tests start real workers as the runtime tests do: the same fixtures."""

from tests.runtime.conftest import basic_app, start_worker

__all__ = ["basic_app", "start_worker"]
