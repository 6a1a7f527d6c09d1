"""Configuration rows written where this process cannot see it: by another process before
it commits, by a script's raw SQL, by a data migration.

``Model.objects`` of a watched model is a ``core.config_cache.ConfigQuerySet``: its
``update()`` drops this process's copies at once and publishes a new generation on commit.
A test of what a process does while its copy is stale needs a write that does neither:
``Model._base_manager`` is a plain ``QuerySet`` (Django's, unless ``Meta.base_manager_name``
says otherwise), whose ``update()`` is one SQL UPDATE and nothing else.
"""

from __future__ import annotations

from typing import TypeVar

from django.db.models import Model, QuerySet

from core.config_cache import ConfigQuerySet

M = TypeVar("M", bound=Model)


def elsewhere(model: type[M]) -> QuerySet[M]:
    """``model``'s rows through a plain queryset: ``elsewhere(Client).filter(pk=pk).update(...)``
    changes the row and leaves this process's copies and the shared generation as they were."""
    rows = model._base_manager.all()
    assert not isinstance(rows, ConfigQuerySet), f"{model._meta.label}'s base manager publishes changes"
    return rows
