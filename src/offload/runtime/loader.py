"""Finding an application object from a `module:attr` path, as celery and uvicorn do."""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

from offload.core.errors import ConfigurationError


def load_app(path: str) -> Any:
    """Import `module:attr` (or `module`, meaning `module:app`) with the cwd on sys.path."""
    if not isinstance(path, str) or not path.strip():
        raise ConfigurationError("no app given: pass MODULE:ATTR or set OFFLOAD_APP")
    module_name, _, attr = path.partition(":")
    attr = attr or "app"
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise ConfigurationError(
                f"cannot import {module_name!r} for app {path!r}: no such module"
            ) from None
        raise
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ConfigurationError(f"module {module_name!r} has no attribute {attr!r}") from None
    if not hasattr(obj, "registry") or not hasattr(obj, "backend"):
        raise ConfigurationError(f"{path!r} is a {type(obj).__name__}, not an offload.App")
    return obj
