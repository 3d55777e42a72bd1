"""Run inside the example Django project (tests/examples/test_django.py starts it in a
process of its own): the project's ASGI application (project/asgi.py) served by uvicorn,
with offload's dashboard in front of Django for active staff only, its live parts streamed."""

from __future__ import annotations

import django

django.setup()

import httpx  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client, override_settings  # noqa: E402
from project.asgi import application  # noqa: E402
from shop.tasks import confirm_order, send_receipt  # noqa: E402

from offload.contrib.django import get_app  # noqa: E402
from tests.serving import served  # noqa: E402

call_command("migrate", verbosity=0)
jobs = get_app()
User.objects.create_user("clerk", password="pw-clerk")
User.objects.create_user("boss", password="pw-boss", is_staff=True)
User.objects.create_user("gone", password="pw-gone", is_staff=True, is_active=False)
#: The auth backend that lets a deactivated user sign in (Django's own).
EVERYONE = "django.contrib.auth.backends.AllowAllUsersModelBackend"
waiting = confirm_order.enqueue(1)
send_receipt.enqueue("ada@example.org")


def session_of(username: str, password: str) -> dict[str, str]:
    """The session cookie of a user signed in (as the admin's login form would)."""
    client = Client()
    assert client.login(username=username, password=password)
    return {settings.SESSION_COOKIE_NAME: client.cookies[settings.SESSION_COOKIE_NAME].value}


with served(application) as url:
    with httpx.Client(base_url=url, timeout=30) as anonymous:
        answer = anonymous.get("/offload/")
        assert answer.status_code == 302, answer.status_code
        assert answer.headers["location"] == "/admin/login/?next=/offload/"
        assert anonymous.get("/admin/login/").status_code == 200  # Django, untouched
        refused = anonymous.post(f"/offload/jobs/{waiting.id}/cancel")
        assert refused.status_code == 302
    with httpx.Client(base_url=url, cookies=session_of("clerk", "pw-clerk")) as clerk:
        assert clerk.get("/offload/").status_code == 403
        assert clerk.post(f"/offload/jobs/{waiting.id}/cancel").status_code == 403
    # Staff but deactivated: 403 (under a backend that lets them sign in at all).
    with (
        override_settings(AUTHENTICATION_BACKENDS=[EVERYONE]),
        httpx.Client(base_url=url, cookies=session_of("gone", "pw-gone")) as gone,
    ):
        assert gone.get("/offload/").status_code == 403
        assert gone.post(f"/offload/jobs/{waiting.id}/cancel").status_code == 403
    assert jobs.job(int(waiting.id)).status() == "available"

    with httpx.Client(base_url=url, cookies=session_of("boss", "pw-boss"), timeout=30) as boss:
        bare = boss.get("/offload")
        assert (bare.status_code, bare.headers["location"]) == (302, "/offload/")
        overview = boss.get("/offload/")
        assert overview.status_code == 200, overview.text[:300]
        assert '<tr data-queue="mail">' in overview.text
        assert 'href="/offload/jobs?queue=default' in overview.text
        csrf = boss.cookies["offload_csrf"]
        with boss.stream("GET", "/offload/live/overview") as live:  # streamed, not buffered
            assert live.headers["content-type"].startswith("text/event-stream")
            first = next(live.iter_text())
            assert "event: queues" in first and 'data-queue="default"' in first, first
        refused = boss.post(f"/offload/jobs/{waiting.id}/cancel", data={"csrf": "x" * 43})
        assert refused.status_code == 403
        done = boss.post(f"/offload/jobs/{waiting.id}/cancel", data={"csrf": csrf})
        assert done.status_code == 303, (done.status_code, done.text[:300])
    assert jobs.job(int(waiting.id)).status() == "cancelled"
print("asgi dashboard ok")
