"""The shop's tasks: Django tasks, run by `manage.py offload worker`."""

from __future__ import annotations

from django.conf import settings
from django_tasks import TaskContext, task

from offload.contrib.django import schedule

from .models import Order


@task(priority=10)
def confirm_order(order_id: int) -> str:
    """Mark an order confirmed; the order exists, as the job was stored in its transaction."""
    order = Order.objects.get(id=order_id)
    order.confirmed = True
    order.save()
    return f"order {order_id} confirmed"


@task(queue_name="mail", takes_context=True)
def send_receipt(context: TaskContext, email: str) -> int:
    """Say which attempt this is (TaskContext comes from the job)."""
    return context.attempt


@task
async def count_orders() -> int:
    """An async task: runs on the worker's event loop."""
    count: int = await Order.objects.acount()
    return count


@task
def check_stock(item: str) -> None:
    """A task that fails: its TaskResult ends FAILED, with the error."""
    raise LookupError(f"no stock of {item}")


@task(queue_name="mail")
def tidy_orders() -> int:
    """A periodic task: `manage.py offload scheduler` enqueues it at each tick."""
    return Order.objects.filter(confirmed=False).count()


schedule(tidy_orders, settings.TIDY_ORDERS_CRON)
