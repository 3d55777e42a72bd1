"""Run inside the example Django project (tests/examples/test_django.py starts it in a
process of its own, so Django's settings never reach the test process): enqueue in a
transaction that rolls back and in one that commits, run `manage.py offload worker
--burst`, and check each TaskResult."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import django

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import transaction  # noqa: E402
from django.utils import timezone  # noqa: E402
from django_tasks import TaskResultStatus, default_task_backend  # noqa: E402
from shop.models import Order  # noqa: E402
from shop.tasks import check_stock, confirm_order, count_orders, send_receipt  # noqa: E402

from offload.contrib.django import get_app, release  # noqa: E402

call_command("migrate", verbosity=0)
jobs = get_app()


class RolledBack(Exception):
    pass


try:
    with transaction.atomic():
        lost = Order.objects.create(item="lost")
        confirm_order.enqueue(lost.id)
        raise RolledBack
except RolledBack:
    pass
assert not Order.objects.exists()
assert jobs.jobs() == [], "a job of a rolled-back transaction was stored"

# Arguments that are not JSON: Django's own error, at enqueue, and nothing stored.
try:
    send_receipt.enqueue({"not", "json"})
except TypeError as exc:
    assert "Unsupported type" in str(exc), exc
else:
    raise AssertionError("a set was enqueued")
try:
    send_receipt.enqueue(b"\xff")
except ValueError as exc:
    assert "Unsupported value" in str(exc), exc
else:
    raise AssertionError("undecodable bytes were enqueued")
assert jobs.jobs() == [], "a job with arguments that are not JSON was stored"

with transaction.atomic():
    order = Order.objects.create(item="mug")
    kept = confirm_order.enqueue(order.id)
    assert jobs.jobs() == [], "the job is visible before its transaction commits"
assert [job.id for job in jobs.jobs()] == [int(kept.id)]
assert kept.status == TaskResultStatus.READY
assert jobs.job(int(kept.id)).job().priority == 10

receipt = send_receipt.enqueue("ada@example.org")
counted = count_orders.enqueue()
failing = check_stock.enqueue("teapot")
later = confirm_order.using(run_after=timezone.now() + timedelta(hours=1)).enqueue(order.id)

subprocess.run(
    [sys.executable, "manage.py", "offload", "worker", "--burst", "-q", "default,mail"],
    check=True,
    timeout=120,
)

kept.refresh()
assert kept.status == TaskResultStatus.SUCCESSFUL, kept.status
assert kept.return_value == f"order {order.id} confirmed"
assert kept.attempts == 1
assert Order.objects.get(id=order.id).confirmed
receipt.refresh()
assert (receipt.status, receipt.return_value) == (TaskResultStatus.SUCCESSFUL, 1)
counted.refresh()
assert counted.return_value == 1
failing.refresh()
assert failing.status == TaskResultStatus.FAILED, failing.status
(error,) = failing.errors
assert error.exception_class is LookupError
assert "no stock of teapot" in error.traceback
later.refresh()
assert later.status == TaskResultStatus.READY
listed = subprocess.run(
    [sys.executable, "manage.py", "offload", "jobs", "--json"],
    check=True,
    capture_output=True,
    text=True,
    timeout=120,
)
assert "shop.tasks.confirm_order" in listed.stdout
again = default_task_backend.get_result(kept.id)
assert again.task.func is confirm_order.func and again.status == TaskResultStatus.SUCCESSFUL

# A job shed by flow control will still run (the sweep or a retry brings it back): READY.
jobs.set_queue("mail", shed_depth=1, shed_priority=100)
send_receipt.enqueue("alan@example.org")  # the queue's one job, admitted
shed = send_receipt.enqueue("grace@example.org")
assert jobs.job(int(shed.id)).status() == "shed"
shed.refresh()
assert shed.status == TaskResultStatus.READY, shed.status
jobs.set_queue("mail", shed_depth=None, shed_priority=None)

# The test runner's switch: the alias now names its test database, and jobs follow it
# (never into the database the tests replaced).
from django.db import connection  # noqa: E402

import offload  # noqa: E402

original_url, original_name = jobs.url, connection.settings_dict["NAME"]
stored_before = len(jobs.jobs(limit=500))
if connection.vendor == "sqlite":
    test_file = str(Path(original_name).with_name("test_" + Path(original_name).name))
    connection.settings_dict["TEST"] = {**connection.settings_dict["TEST"], "NAME": test_file}
connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
try:
    assert get_app() is jobs and jobs.url != original_url  # followed, tasks kept
    outside = send_receipt.enqueue("test@example.org")
    with transaction.atomic():
        inside = confirm_order.enqueue(Order.objects.create(item="test").id)
    assert {job.id for job in jobs.jobs()} == {int(outside.id), int(inside.id)}
finally:
    release()  # PostgreSQL drops no database a session is connected to
    connection.creation.destroy_test_db(original_name, verbosity=0)
assert get_app().url == original_url
real = offload.App(original_url)
assert len(real.jobs(limit=500)) == stored_before, "a test's job reached the real database"
real.close()

# offload.testing's harness points the App at its own database for a test: Django's
# alias is not followed meanwhile, and enqueues in a Django transaction store there.
from offload.testing import harness  # noqa: E402

with harness(jobs) as under_test:
    with transaction.atomic():
        held = confirm_order.enqueue(order.id)
    under_test.assert_enqueued("shop.tasks.confirm_order", args=[order.id], queue="default")
    assert under_test.drain().succeeded == 1
    held.refresh()
    assert held.status == TaskResultStatus.SUCCESSFUL, held.status
with harness(jobs, mode="inline"):
    with transaction.atomic():
        inline = send_receipt.enqueue("inline@example.org")  # run before it returns
    inline.refresh()
    assert (inline.status, inline.return_value) == (TaskResultStatus.SUCCESSFUL, 1)
assert get_app().url == original_url
real = offload.App(original_url)
assert len(real.jobs(limit=500)) == stored_before, "a harness's job reached the database"
real.close()
print("scenario ok")
