"""POST /orders places an order and enqueues its confirmation; /offload/ is offload's
dashboard, for staff signed in (through /admin/login/)."""

from django.contrib import admin
from django.urls import include, path
from shop.views import place_order

urlpatterns = [
    path("orders", place_order),
    path("admin/", admin.site.urls),
    path("offload/", include("offload.contrib.django.urls")),
]
