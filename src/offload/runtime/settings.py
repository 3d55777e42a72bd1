"""A worker's settings checked before anything starts, and its signal handlers."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Mapping, Sequence
from types import FrameType
from typing import Any

from offload.core.errors import ConfigurationError
from offload.core.options import EXECUTORS


def check_settings(
    *,
    executor: str,
    app_path: str | None,
    queues: Sequence[str],
    async_concurrency: int,
    shutdown_timeout: float,
    periods: Mapping[str, float],
    prefetch: int | None,
) -> None:
    """Raise ConfigurationError naming the first bad setting of a worker."""
    if executor not in EXECUTORS:
        raise ConfigurationError(f"unknown executor {executor!r}; one of {EXECUTORS}")
    if executor == "process" and not app_path:
        raise ConfigurationError(
            "the process executor needs the app as an import path (app_path='module:app'); "
            "use executor='thread' for an app that is not importable"
        )
    if async_concurrency < 1:
        raise ConfigurationError(f"async_concurrency must be >= 1, got {async_concurrency}")
    if not queues:
        raise ConfigurationError("a worker needs at least one queue")
    if not isinstance(shutdown_timeout, int | float) or shutdown_timeout < 0:
        raise ConfigurationError(f"shutdown_timeout must be >= 0, got {shutdown_timeout!r}")
    for name, value in periods.items():
        if not isinstance(value, int | float) or value <= 0:
            raise ConfigurationError(f"{name} must be a positive number, got {value!r}")
    if prefetch is not None and prefetch < 0:
        raise ConfigurationError(f"prefetch must be >= 0, got {prefetch}")


def install_handlers(handler: Callable[[int, FrameType | None], None]) -> dict[int, Any]:
    """Route SIGTERM and SIGINT to `handler` (main thread only); return the old handlers."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {signum: signal.signal(signum, handler) for signum in (signal.SIGTERM, signal.SIGINT)}


def restore_handlers(previous: dict[int, Any]) -> None:
    """Put back the handlers `install_handlers` replaced."""
    for signum, handler in previous.items():
        signal.signal(signum, handler)
