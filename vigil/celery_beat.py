"""Celery beat's scheduler: django-celery-beat's, with code schedules as *defaults*, and
one beat at a time.

django-celery-beat writes every entry of ``beat_schedule`` (settings and
``add_periodic_task``) over its database row at each beat start, so an admin's change of
interval or arguments would silently revert. Here an entry from code is installed only when
its row does not exist yet; after that the row in the admin is the truth.

A second beat (started by mistake, or kept as a standby) sends nothing while another holds
the beat lock (``vigil.beat_guard``): it logs that it stands by and takes over when the
holder is gone, reading the schedule afresh from the database first (``beat_sync_every = 1``
keeps each entry's last run there), so no job runs twice.

Entries write back only their own bookkeeping (``Entry.save``), never a whole row an admin
may have changed meanwhile.
"""

from __future__ import annotations

from typing import Any

from django_celery_beat.models import PeriodicTask
from django_celery_beat.schedulers import DatabaseScheduler as _DatabaseScheduler
from django_celery_beat.schedulers import ModelEntry

from .beat_guard import BeatGuard, standby_seconds

#: The beat's own bookkeeping of an entry (``ModelEntry.save_fields`` less the in-memory flag).
_BOOKKEEPING = ("last_run_at", "total_run_count")


class Entry(ModelEntry):
    def save(self) -> None:
        """Write the entry's last run and run count, and nothing else, in one ``UPDATE``.
        django-celery-beat reads the row, sets these two fields and saves every field back: an
        admin's change committed in between (the task disabled, a new interval) was overwritten
        with what had just been read, and the disabled task went on running. With
        ``beat_sync_every = 1`` that window opens after every send."""
        type(self.model)._default_manager.filter(pk=self.model.pk).update(
            **{name: getattr(self.model, name) for name in _BOOKKEEPING})


class DatabaseScheduler(_DatabaseScheduler):
    Entry = Entry

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.guard = BeatGuard()
        super().__init__(*args, **kwargs)

    def update_from_dict(self, mapping: dict[str, Any]) -> None:
        existing = set(PeriodicTask.objects.filter(name__in=list(mapping)).values_list("name", flat=True))
        super().update_from_dict({name: entry for name, entry in mapping.items() if name not in existing})

    def tick(self, *args: Any, **kwargs: Any) -> float:
        """Send what is due only while holding the beat lock; otherwise wait and ask again."""
        was_holding = self.guard.holding
        if not self.guard.may_send():
            return standby_seconds()
        if not was_holding:  # taking over: the last runs are in the database, not in memory
            self._initial_read = True
            self._heap = None
        return float(super().tick(*args, **kwargs))

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.guard.release()
