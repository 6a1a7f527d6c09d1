"""Bulk deactivation seen as a save is: Django sends ``post_save`` for ``Model.save()`` but
nothing for ``QuerySet.update()`` or ``bulk_update()``, so a script or a bulk admin action that
deactivates users or clients would leave their token families alive (refused where used, but
never ended, recorded or announced to relying services).

``DeactivatingQuerySet`` hands the rows such a write turns from active to inactive to
``deactivated()``, which the model's queryset implements: the users' (``accounts.models``)
revoke their families through ``sessions.flows.revocation``; the clients' (``clients.models``,
below sessions) announce ``clients.signals.deactivated_in_bulk``. In one transaction with the
write:

- every row the write matches is locked first (``SELECT ... FOR UPDATE``, the inactive ones
  too), and the active ones among them noted: under read committed, a row read as inactive and
  reactivated by another transaction before the write would otherwise be deactivated with the
  families it gained meanwhile left live;
- after the write, those of them now inactive are the deactivated ones, whatever the write
  stored: ``False``, but also ``"False"``, ``0``, ``Value(False)`` or a ``Case``, which Django
  stores as false too (a write of exactly ``True`` skips all this);
- they are handed over ``CHUNK`` rows at a time, so only their ids are held all at once.

A failure anywhere (the write, a revocation half-way) rolls the whole write back, and since the
announcements go out on commit (``idp.backchannel.listener``, ``shared_signals.transmitter``),
nothing is announced either. Raw SQL and data migrations still bypass all of it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from django.db import models, transaction

M = TypeVar("M", bound=models.Model)

#: Rows handed to ``deactivated()`` at a time.
CHUNK = 500


class DeactivatingQuerySet(models.QuerySet[M]):
    def deactivated(self, rows: list[M]) -> None:
        """``rows`` (now inactive, at least one) were active before this write."""
        raise NotImplementedError

    def update(self, **kwargs: Any) -> int:
        if kwargs.get("is_active", True) is True:  # not written, or written exactly True: deactivates no one
            return super().update(**kwargs)
        write = super().update
        with transaction.atomic(using=self.db):
            return self._ending(self._rows().filter(pk__in=self.values("pk")), lambda: write(**kwargs))

    def bulk_update(self, objs: Iterable[M], fields: Iterable[str], batch_size: int | None = None) -> int:
        objs, fields = list(objs), list(fields)
        write = super().bulk_update
        if "is_active" not in fields or all(getattr(obj, "is_active", None) is True for obj in objs):
            return write(objs, fields, batch_size=batch_size)
        with transaction.atomic(using=self.db):
            matched = self._rows().filter(pk__in=[obj.pk for obj in objs])
            return self._ending(matched, lambda: write(objs, fields, batch_size=batch_size))

    def _rows(self) -> models.QuerySet[M]:
        """The model's rows through a plain queryset, on this one's database."""
        return self.model._base_manager.using(self.db).all()

    def _ending(self, matched: models.QuerySet[M], write: Callable[[], int]) -> int:
        """Lock ``matched``, note its active rows, ``write``, then hand over those it deactivated."""
        locked = matched.select_for_update().order_by("pk").values_list("pk", "is_active")
        active = [pk for pk, is_active in locked if is_active]
        written = write()
        for start in range(0, len(active), CHUNK):
            ended = list(self._rows().filter(pk__in=active[start:start + CHUNK], is_active=False))
            if ended:
                self.deactivated(ended)
        return written
