"""What `manage.py offload ...` hands to offload's command line as `--app`: the
project's App, with Django set up and every app's `tasks` module imported (so that the
worker, and each child process it starts, knows the project's tasks)."""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import django
    from django.apps import apps
    from django.utils.module_loading import autodiscover_modules

    if not apps.ready:
        django.setup()
    autodiscover_modules("tasks")
    from offload.contrib.django.conf import get_app

    return get_app()
