"""Bulk deactivation seen as a save is: Django sends ``post_save`` for ``Model.save()`` but
nothing for ``QuerySet.update()`` or ``bulk_update()``, so a script or a bulk admin action that
deactivates users or clients would leave their token families alive (refused where used, but
never ended, recorded or announced to relying services).

``DeactivatingQuerySet`` finds the rows such a write turns from active to inactive (read in
its transaction, before the write) and hands them, marked inactive, to ``deactivated()``,
which the model's queryset implements: the users' (``accounts.models``) revoke their families
through ``sessions.flows.revocation``; the clients' (``clients.models``, below sessions)
announce ``clients.signals.deactivated_in_bulk``. Raw SQL and data migrations still bypass it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from django.db import models, transaction

M = TypeVar("M", bound=models.Model)

class DeactivatingQuerySet(models.QuerySet[M]):
    def deactivated(self, rows: list[M]) -> None:
        """``rows`` (now inactive, at least one) were active before this write."""
        raise NotImplementedError

    def update(self, **kwargs: Any) -> int:
        if "is_active" not in kwargs or kwargs["is_active"]:
            return super().update(**kwargs)
        with transaction.atomic(using=self.db):
            return self._ending(self.filter(is_active=True), lambda: super(DeactivatingQuerySet, self).update(**kwargs))

    def bulk_update(self, objs: Iterable[M], fields: Iterable[str], batch_size: int | None = None) -> int:
        objs, fields = list(objs), list(fields)
        if "is_active" not in fields:
            return super().bulk_update(objs, fields, batch_size=batch_size)
        off = [obj.pk for obj in objs if not _is_active(obj)]
        with transaction.atomic(using=self.db):
            active = self.model._default_manager.using(self.db).filter(pk__in=off, is_active=True)
            return self._ending(active, lambda: super(DeactivatingQuerySet, self).bulk_update(
                objs, fields, batch_size=batch_size))

    def _ending(self, active: models.QuerySet[M], write: Callable[[], int]) -> int:
        ending = list(active)
        rows = write()
        for row in ending:
            _mark_inactive(row)
        if ending:
            self.deactivated(ending)
        return rows


def _is_active(row: Any) -> bool:  # the models this serves (User, Client) have is_active
    return bool(row.is_active)


def _mark_inactive(row: Any) -> None:
    row.is_active = False
