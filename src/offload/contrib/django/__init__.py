"""Django: a backend for Django's tasks framework (the `django-tasks` backport of Django
6's `django.tasks`) that stores tasks as offload jobs, and `manage.py offload ...`.

    INSTALLED_APPS = [..., "django_tasks", "offload.contrib.django"]
    TASKS = {"default": {"BACKEND": "offload.contrib.django.OffloadBackend"}}
    OFFLOAD = {}    # optional: URL, DATABASE, AUTO_MIGRATE, PAYLOAD_LIMIT

By default offload stores its jobs in Django's own database (`DATABASES["default"]`), and
a task enqueued inside `transaction.atomic()` is stored in that transaction: it exists
once the transaction commits, and never if it rolls back. Workers: `manage.py offload
worker` (any `offload` command works the same way). `pip install 'offload[django]'`.
"""

from offload.contrib.django.backend import OffloadBackend, schedule
from offload.contrib.django.conf import get_app, release

__all__ = ["OffloadBackend", "get_app", "release", "schedule"]
