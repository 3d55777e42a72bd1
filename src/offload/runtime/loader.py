"""Finding an application object from a `module:attr` path, as celery and uvicorn do."""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

from offload.core.errors import AppImportFailed, ConfigurationError, OffloadError


def load_app(path: str) -> Any:
    """Import `module:attr` (or `module`, meaning `module:app`) with the cwd on sys.path.

    A failure names what is wrong: a file path given for a module (with the dotted name to
    use), a module that does not exist, or the exception the module raised while importing
    (`AppImportFailed`, carrying it with its traceback).
    """
    if not isinstance(path, str) or not path.strip():
        raise ConfigurationError("no app given: pass MODULE:ATTR or set OFFLOAD_APP")
    module_name, _, attr = path.partition(":")
    _refuse_file_path(path, module_name, attr)
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
        raise AppImportFailed(module_name, exc) from exc
    except OffloadError:
        raise  # offload's own errors (a bad URL in App(...)) explain themselves
    except Exception as exc:
        raise AppImportFailed(module_name, exc) from exc
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ConfigurationError(f"module {module_name!r} has no attribute {attr!r}") from None
    if not hasattr(obj, "registry") or not hasattr(obj, "backend"):
        raise ConfigurationError(f"{path!r} is a {type(obj).__name__}, not an offload.App")
    return obj


def _refuse_file_path(path: str, module_name: str, attr: str) -> None:
    """Refuse `myproject/jobs.py[:app]`, suggesting the dotted module name it means."""
    if not (module_name.endswith(".py") or "/" in module_name or os.sep in module_name):
        return
    dotted = module_name.removesuffix(".py").replace(os.sep, ".").replace("/", ".")
    dotted = dotted.lstrip(".")
    suggestion = f"{dotted}:{attr}" if attr else dotted
    raise ConfigurationError(
        f"{path!r} is a file path, not a module: did you mean {suggestion}? "
        "(run offload from the directory that holds the package)"
    )
