"""The project under an ASGI server (`uvicorn project.asgi:application`): Django, with
offload's dashboard at /offload/ for staff, its live parts streamed on the event loop."""

import os

from django.core.asgi import get_asgi_application

from offload.contrib.django.asgi import with_dashboard

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
application = with_dashboard(get_asgi_application(), "/offload")
