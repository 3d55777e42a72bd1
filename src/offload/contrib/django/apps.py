"""The Django app: checks `settings.OFFLOAD` at start-up."""

from __future__ import annotations

from django.apps import AppConfig


class OffloadConfig(AppConfig):
    """`offload.contrib.django` in INSTALLED_APPS: settings checked when Django starts,
    and the `offload` management command."""

    name = "offload.contrib.django"
    label = "offload"
    verbose_name = "offload"

    def ready(self) -> None:
        from offload.contrib.django.conf import offload_settings

        offload_settings()  # an unknown key stops the project here, named
