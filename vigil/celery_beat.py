"""Celery beat's scheduler: django-celery-beat's, with code schedules as *defaults*.

django-celery-beat writes every entry of ``beat_schedule`` (settings and
``add_periodic_task``) over its database row at each beat start, so an admin's change of
interval or arguments would silently revert. Here an entry from code is installed only when
its row does not exist yet; after that the row in the admin is the truth.
"""

from __future__ import annotations

from typing import Any

from django_celery_beat.models import PeriodicTask
from django_celery_beat.schedulers import DatabaseScheduler as _DatabaseScheduler


class DatabaseScheduler(_DatabaseScheduler):
    def update_from_dict(self, mapping: dict[str, Any]) -> None:
        existing = set(PeriodicTask.objects.filter(name__in=list(mapping)).values_list("name", flat=True))
        super().update_from_dict({name: entry for name, entry in mapping.items() if name not in existing})
