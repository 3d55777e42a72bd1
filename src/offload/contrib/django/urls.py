"""offload's dashboard in a project's URLconf, for its signed-in staff only:

    urlpatterns = [..., path("offload/", include("offload.contrib.django.urls"))]

Needs `django.contrib.auth` with its middleware (who is signed in), and the
`offload[django-dashboard]` extra.
"""

from __future__ import annotations

from django.urls import re_path

from offload.contrib.django.views import dashboard

app_name = "offload"
urlpatterns = [re_path(r"^(?P<path>.*)$", dashboard, name="dashboard")]
