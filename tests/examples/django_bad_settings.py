"""The example project's settings with one mistake, chosen by `$BAD_SETTING`, for
tests/examples/test_django.py: each must stop the project at start-up, named."""

import os

from project.settings import *  # noqa: F403
from project.settings import OFFLOAD, TASKS

_bad = os.environ["BAD_SETTING"]
if _bad == "offload-key":
    OFFLOAD["AUTO_MIGRTE"] = False
elif _bad == "tasks-option":
    TASKS["default"]["OPTIONS"]["max_attempt"] = 2
elif _bad == "tasks-key":
    TASKS["default"]["QUEUE"] = ["default"]
elif _bad == "database-alias":
    OFFLOAD["DATABASE"] = "replica"
