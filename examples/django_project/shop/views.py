"""Place an order and enqueue its confirmation in one transaction."""

from __future__ import annotations

from django.db import transaction
from django.http import HttpRequest, JsonResponse

from .models import Order
from .tasks import confirm_order


def place_order(request: HttpRequest) -> JsonResponse:
    with transaction.atomic():
        order = Order.objects.create(item=request.POST.get("item", "mug"))
        result = confirm_order.enqueue(order.id)  # stored with the order, or not at all
    return JsonResponse({"order": order.id, "task_result": result.id}, status=202)
