"""A small Django project whose tasks run on offload, in Django's own database.

`EXAMPLE_DATABASE` picks the database: a `postgresql://user:password@host:port/name` URL,
or a SQLite file path (default: db.sqlite3 beside manage.py).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = "example-only-not-secret"  # noqa: S105
DEBUG = True
ALLOWED_HOSTS = ["*"]
USE_TZ = True
ROOT_URLCONF = "project.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    # Staff sign in through the admin's login page to see offload's dashboard.
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django_tasks",
    "offload.contrib.django",
    "shop",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
LOGIN_URL = "admin:login"


def database(given: str) -> dict[str, Any]:
    """Django's DATABASES entry for `given`."""
    if not given.startswith("postgresql://"):
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": given}
    parts = urlsplit(given)
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": parts.path.lstrip("/"),
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "",
        "PORT": parts.port or "",
    }


DATABASES = {"default": database(os.environ.get("EXAMPLE_DATABASE", str(BASE_DIR / "db.sqlite3")))}

TASKS = {
    "default": {
        "BACKEND": "offload.contrib.django.OffloadBackend",
        "QUEUES": ["default", "mail"],
        "OPTIONS": {"max_attempts": 1, "timeout": 60},
    }
}

# Optional: offload shares DATABASES["default"] unless told otherwise.
OFFLOAD: dict[str, Any] = {}

# When `manage.py offload scheduler` enqueues shop.tasks.tidy_orders (cron, UTC).
TIDY_ORDERS_CRON = os.environ.get("EXAMPLE_TIDY_ORDERS_CRON", "0 3 * * *")
