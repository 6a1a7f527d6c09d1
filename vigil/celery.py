"""The Celery application: periodic revalidation, key rotation and clean-up.

The schedule is ``vigil.schedule`` (one list); old task names stay registered as aliases.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery

from . import schedule

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vigil.settings")

app = Celery("vigil")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_configure.connect
def install_schedule(sender: Celery, **kwargs: Any) -> None:
    """Beat's entries, built from the settings once Django's settings are read."""
    sender.conf.beat_schedule = schedule.beat_schedule()


def _alias(old: str, new: str) -> None:
    """Register ``old`` as a task that runs ``new`` in the same worker (one release only)."""

    @app.task(name=old, acks_late=True)
    def forward(*args: Any, **kwargs: Any) -> Any:
        return app.tasks[new](*args, **kwargs)


for _old, _new in schedule.OLD_TASK_NAMES.items():
    _alias(_old, _new)
