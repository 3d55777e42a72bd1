"""One route: POST /orders places an order and enqueues its confirmation."""

from django.urls import path
from shop.views import place_order

urlpatterns = [path("orders", place_order)]
