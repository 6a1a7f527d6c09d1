"""Per-process copies of configuration that changes rarely (clients, signing keys, registered
apps, health and risk policies), so the token endpoint does not re-read it on every request.

Never trusted for longer than one request: every copy is tagged with the shared *config
generation*, a value in the shared cache (Redis in production) that changes, on commit,
whenever any configuration row is saved or deleted. A request reads that value once (one
GET for all copies, on a connection of its own: ``core.direct_get``) and reloads whatever was
stored under another generation, so an admin's change (a client disabled, a key rotated, a
rule tightened) reaches every web worker on its very next request, not after a TTL.

Only models named with ``watch()`` are covered: a save or delete through their signals, and
``update()``, ``bulk_update()`` and ``bulk_create()`` (which send no signal) through
``ConfigQuerySet``, which ``watch()`` requires of every manager of a watched model, so a client
deactivated by ``Client.objects.filter(...).update(is_active=False)`` (a script, a bulk admin
action) is no longer authenticated from any process's copy once that transaction commits.
Not covered, as Django sends nothing for them: raw SQL, ``Model._base_manager`` (a plain
``QuerySet``), data migrations (historical models have plain managers) and writes from
outside Django; whoever runs them calls ``changed()`` (a management shell, a migration) or
accepts that copies are stale until the next configuration change. When the shared cache is
unreachable the copies are bypassed, never served stale. One edge is accepted: a process
that saves configuration, reads it back through a copy in the same transaction and then
rolls back keeps that uncommitted copy until the next change (Django has no rollback hook);
no request path does that.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Collection, Iterable
from contextvars import ContextVar
from typing import Any, TypeVar

from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import request_finished, request_started
from django.db import transaction
from django.db.models import Model, QuerySet
from django.db.models.signals import post_delete, post_save

from .direct_get import DirectGet

T = TypeVar("T")
M = TypeVar("M", bound=Model)

GENERATION_KEY = "vigil:config-generation"
MAX_ENTRIES = 1024  # per process; a full table of copies is simply dropped and refilled

logger = logging.getLogger(__name__)

_copies: dict[Any, tuple[str, Any]] = {}
# The generation's GET on a connection of its own (Redis only): what cache.get returns, a fifth of the CPU.
_read_generation = DirectGet(GENERATION_KEY)
_NOT_IN_REQUEST = ""
# The generation read by the current request ("" outside requests: read it on every use).
_request_generation: ContextVar[str | None] = ContextVar("vigil_config_generation", default=_NOT_IN_REQUEST)


def _shared_generation() -> str | None:
    try:
        generation = _read_generation() or cache.get(GENERATION_KEY)
        if generation is None:
            cache.add(GENERATION_KEY, secrets.token_hex(8), timeout=None)
            generation = cache.get(GENERATION_KEY)
    except Exception:  # the shared cache is down: bypass the copies rather than trust them
        logger.warning("config cache: shared generation unavailable, reading from the database", exc_info=True)
        return None
    return generation


def _generation() -> str | None:
    memo = _request_generation.get()
    if memo:
        return memo
    generation = _shared_generation()
    if memo is None and generation is not None:  # inside a request: read once
        _request_generation.set(generation)
    return generation


def cached(key: Any, load: Callable[[], T], fresh: Callable[[T], bool] | None = None) -> T:
    """``load()``'s value, from this process's copy when it belongs to the current generation
    (and, given ``fresh``, while ``fresh(copy)`` holds: for copies that also expire with time,
    such as the JWKS at the next scheduled key transition). ``None`` is never kept (an unknown
    client id must not fill memory)."""
    generation = _generation()
    if generation is None:
        return load()
    held = _copies.get(key)
    if held is not None and held[0] == generation and (fresh is None or fresh(held[1])):
        return held[1]
    value = load()
    if value is not None:
        if len(_copies) >= MAX_ENTRIES:
            _copies.clear()
        _copies[key] = (generation, value)
    return value


def held(key: Any, fresh: Callable[[Any], bool] | None = None) -> Any:
    """This process's copy under ``key`` when it belongs to the current shared generation (and
    ``fresh(copy)`` holds), else ``None``; never loads. One cache GET, outside requests too: for
    answers served before Django's request cycle (``vigil.documents_fast_path``), which must
    never touch the database. ``None`` as well when the shared cache is down."""
    copy = _copies.get(key)
    if copy is None:
        return None
    generation = _shared_generation()
    if generation is None or copy[0] != generation or (fresh is not None and not fresh(copy[1])):
        return None
    return copy[1]


def changed() -> None:
    """Configuration changed: drop this process's copies now, and every process's once the
    change is committed (before that, other processes must keep reading the old rows)."""
    _copies.clear()
    transaction.on_commit(_publish_change)


def _publish_change() -> None:
    _copies.clear()
    if _request_generation.get():  # inside a request that already read the old generation
        _request_generation.set(None)
    try:
        cache.set(GENERATION_KEY, secrets.token_hex(8), timeout=None)
    except Exception:
        logger.error("config cache: could not publish a configuration change", exc_info=True)


def clear_local() -> None:
    """Forget this process's copies (tests start from nothing)."""
    _copies.clear()


class ConfigQuerySet(QuerySet[M]):
    """The queryset of every watched model: the bulk writes Django sends no signal for change
    the generation (``changed()``: this process's copies at once, every process's on commit)
    when they wrote a row. ``delete()`` needs nothing here: it sends ``post_delete`` for each
    row while a receiver listens (Django's fast delete is skipped then)."""

    def update(self, **kwargs: Any) -> int:
        rows = super().update(**kwargs)
        _changed_if(rows)
        return rows

    def bulk_update(self, objs: Iterable[M], fields: Iterable[str], batch_size: int | None = None) -> int:
        rows = super().bulk_update(objs, fields, batch_size=batch_size)
        _changed_if(rows)
        return rows

    def bulk_create(
        self,
        objs: Iterable[M],
        batch_size: int | None = None,
        ignore_conflicts: bool = False,
        update_conflicts: bool = False,
        update_fields: Collection[str] | None = None,
        unique_fields: Collection[str] | None = None,
    ) -> list[M]:
        created = super().bulk_create(objs, batch_size=batch_size, ignore_conflicts=ignore_conflicts,
                                      update_conflicts=update_conflicts, update_fields=update_fields,
                                      unique_fields=unique_fields)
        _changed_if(len(created))
        return created


def _changed_if(rows: int) -> None:
    if rows:  # rows matched (PostgreSQL counts a row set to the value it had); none: nothing to reload
        changed()


def watch(*models: Any) -> None:
    """Saving or deleting any row of ``models``, or changing rows through their querysets
    (``ConfigQuerySet``), changes the generation. Called from ``AppConfig.ready()``: a model
    with a manager whose queryset is not a ``ConfigQuerySet`` is refused (``ImproperlyConfigured``,
    so the process does not start), since its ``update()`` would leave every copy stale."""
    for model in models:
        _require_config_querysets(model)
    for model in models:
        post_save.connect(_on_change, sender=model, dispatch_uid=f"config-cache-save-{model._meta.label}")
        post_delete.connect(_on_change, sender=model, dispatch_uid=f"config-cache-delete-{model._meta.label}")


def _require_config_querysets(model: Any) -> None:
    for manager in model._meta.managers:
        queryset_class = getattr(manager, "_queryset_class", None)
        if not (isinstance(queryset_class, type) and issubclass(queryset_class, ConfigQuerySet)):
            raise ImproperlyConfigured(
                f"{model._meta.label}.{manager.name} is watched by core.config_cache but its queryset is not "
                f"a ConfigQuerySet: its update() would leave every process's copies stale. Use "
                f"objects = <a ConfigQuerySet subclass>.as_manager()."
            )


def _on_change(sender: Any, **kwargs: Any) -> None:
    changed()


def _request_starts(**kwargs: Any) -> None:
    _request_generation.set(None)


def _request_ends(**kwargs: Any) -> None:
    _request_generation.set(_NOT_IN_REQUEST)


request_started.connect(_request_starts, dispatch_uid="config-cache-request-started")
request_finished.connect(_request_ends, dispatch_uid="config-cache-request-finished")
