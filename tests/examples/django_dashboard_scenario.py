"""Run inside the example Django project (tests/examples/test_django.py starts it in a
process of its own): offload's dashboard at /offload/, through Django's test client, for
an anonymous visitor (to the login page), a signed-in user who is not staff (403), a
deactivated staff user (403) and a staff user (the overview with the project's queues, a
job's page, actions with the dashboard's CSRF token and refused without it)."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
from urllib.parse import urlencode

import django

django.setup()

from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.http import HttpResponse  # noqa: E402
from django.test import Client, override_settings  # noqa: E402
from shop.models import Order  # noqa: E402
from shop.tasks import check_stock, confirm_order, send_receipt  # noqa: E402

from offload.contrib.django import get_app, views  # noqa: E402


def submit(client: Client, url: str, fields: dict[str, str], **headers: str) -> HttpResponse:
    """POST `fields` as a browser submits a form (urlencoded)."""
    answer: HttpResponse = client.post(
        url, urlencode(fields), "application/x-www-form-urlencoded", headers=headers
    )
    return answer


call_command("migrate", verbosity=0)
jobs = get_app()

User.objects.create_user("clerk", password="pw-clerk")
User.objects.create_user("boss", password="pw-boss", is_staff=True)
User.objects.create_user("gone", password="pw-gone", is_staff=True, is_active=False)
#: The auth backend that lets a deactivated user sign in (Django's own).
EVERYONE = "django.contrib.auth.backends.AllowAllUsersModelBackend"

order = Order.objects.create(item="mug")
send_receipt.enqueue("ada@example.org")
failing = check_stock.enqueue("teapot")
subprocess.run(
    [sys.executable, "manage.py", "offload", "worker", "--burst", "-q", "default,mail"],
    check=True,
    timeout=120,
)
waiting = confirm_order.enqueue(order.id)  # enqueued after the worker: it waits
assert jobs.job(int(waiting.id)).status() == "available"
assert jobs.job(int(failing.id)).status() == "dead"

# Anonymous: to the login page, coming back here after.
anonymous = Client()
answer = anonymous.get("/offload/")
assert answer.status_code == 302, answer.status_code
assert answer["Location"] == "/admin/login/?next=/offload/", answer["Location"]
answer = anonymous.post(f"/offload/jobs/{waiting.id}/cancel")
assert answer.status_code == 302
assert jobs.job(int(waiting.id)).status() == "available"

# Signed in, not staff: 403, for pages and actions.
clerk = Client()
assert clerk.login(username="clerk", password="pw-clerk")
assert clerk.get("/offload/").status_code == 403
assert clerk.get(f"/offload/jobs/{waiting.id}").status_code == 403
assert clerk.post(f"/offload/jobs/{waiting.id}/cancel").status_code == 403
assert jobs.job(int(waiting.id)).status() == "available"

# Staff but deactivated: 403, as Django's admin refuses them, even under a backend that
# lets inactive users sign in (the default one signs them out: anonymous, above).
with override_settings(AUTHENTICATION_BACKENDS=[EVERYONE]):
    gone = Client()
    assert gone.login(username="gone", password="pw-gone")
    assert gone.get("/offload/").status_code == 403
    assert gone.post(f"/offload/jobs/{waiting.id}/cancel").status_code == 403
assert jobs.job(int(waiting.id)).status() == "available"

# Staff: the dashboard, with the project's jobs, its links under /offload/.
boss = Client()
assert boss.login(username="boss", password="pw-boss")
overview = boss.get("/offload/")
assert overview.status_code == 200, overview.content[:500]
page = overview.content.decode()
assert '<tr data-queue="mail">' in page and '<tr data-queue="default">' in page, page
assert 'href="/offload/jobs?queue=default&amp;state=dead">1</a>' in page, page
assert overview["Content-Security-Policy"].startswith("default-src 'self'")
csrf = boss.cookies["offload_csrf"]
assert csrf["path"] == "/offload" and csrf["httponly"], csrf.output()
job_page = boss.get(f"/offload/jobs/{waiting.id}").content.decode()
assert "shop.tasks.confirm_order" in job_page
assert re.search(r'name="csrf" value="' + re.escape(csrf.value) + '"', job_page)
assert 'href="/offload/static/dashboard.css' in page
style = boss.get("/offload/static/dashboard.css")
assert style.status_code == 200 and style["Content-Type"].startswith("text/css")
assert boss.get("/offload/no/such/page").status_code == 404

# A live part: streamed (the first event arrives while the stream stays open).
live = boss.get("/offload/live/overview")
assert live.status_code == 200 and live.streaming
assert live["Content-Type"].startswith("text/event-stream")
first = next(iter(live.streaming_content)).decode()
assert "event: queues" in first and 'data-queue="default"' in first, first
loop = views._built[1].loop if views._built else None
assert loop is not None


async def requests_running() -> int:
    """The dashboard's requests under way on its event loop."""
    return sum(
        "_Bridge.call" in getattr(t.get_coro(), "__qualname__", "") for t in asyncio.all_tasks()
    )


assert asyncio.run_coroutine_threadsafe(requests_running(), loop).result() == 1
live.close()  # the client went: the dashboard's stream stops
deadline = time.monotonic() + 10
while asyncio.run_coroutine_threadsafe(requests_running(), loop).result():
    assert time.monotonic() < deadline, "the live part still runs after its client went"
    time.sleep(0.05)

# Actions: refused without the dashboard's CSRF token, or from another site; done with it.
refused = submit(boss, f"/offload/jobs/{waiting.id}/cancel", {"csrf": "x" * 43})
assert refused.status_code == 403 and b"CSRF" in refused.content, refused.content[:300]
refused = submit(
    boss, f"/offload/jobs/{waiting.id}/cancel", {"csrf": csrf.value}, Origin="https://evil.example"
)
assert refused.status_code == 403, refused.status_code
assert jobs.job(int(waiting.id)).status() == "available"
done = submit(boss, f"/offload/jobs/{waiting.id}/cancel", {"csrf": csrf.value})
assert done.status_code == 303, (done.status_code, done.content[:300])
assert done["Location"] == f"/offload/jobs/{waiting.id}", done["Location"]
assert jobs.job(int(waiting.id)).status() == "cancelled"
retried = boss.post(  # as htmx sends it: the token in its header
    f"/offload/jobs/{failing.id}/retry", headers={"X-CSRF-Token": csrf.value, "HX-Request": "true"}
)
assert retried.status_code == 200, retried.status_code
assert jobs.job(int(failing.id)).status() == "available"
print("dashboard ok")
