"""The JWKS and the discovery document, served from memory as bytes built once.

Relying parties fetch these far more often than anything changes in them, so each process
keeps the serialised body and its ``Cache-Control`` and answers without SQL:

* the JWKS (RFC 7517 §5) is a config-cache copy (``core.config_cache``): it holds while the
  shared config generation does (a signing key saved on any instance, by a rotation, a
  scheduled transition or a withdrawal, changes it on commit, so every process sees it at its
  next request) *and* until the next scheduled key transition (``PublishedKeys.valid_until``),
  so no time-based change is served late. With the shared cache down it is read from the
  database on every request, never served stale;
* discovery (OIDC Discovery 1.0 §4, RFC 8414 §3) reads settings only, no row: it is built once
  per process, with no cache read at all.

Both are built again when a setting changes (``setting_changed``: only tests change settings
in a running process).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.core.signals import setting_changed
from django.http import HttpResponse
from django.utils import timezone

from core import config_cache, keys
from core.app_settings import app_settings

from . import discovery

DISCOVERY_MAX_AGE = 3600
_settings_epoch = [0]  # bumped when a setting changes: copies built under other settings are not used


@dataclass(frozen=True)
class Document:
    """A JSON body as sent, with its ``Cache-Control``; ``valid_until`` ends the copy early."""

    body: bytes
    cache_control: str
    valid_until: datetime | None = None

    def response(self) -> HttpResponse:
        response = HttpResponse(self.body, content_type="application/json")
        response["Cache-Control"] = self.cache_control
        return response

    def fresh_at(self, moment: datetime) -> bool:
        return self.valid_until is None or moment < self.valid_until


def _serialise(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, cls=DjangoJSONEncoder, separators=(",", ":")).encode()


def jwks(now: datetime | None = None) -> Document:
    """The JWKS as served now. An empty set (no algorithm configured) must not stick in relying
    parties' caches: it is sent with ``max-age=0``."""
    moment = now or timezone.now()
    key = ("idp-document", "jwks", _settings_epoch[0])
    return config_cache.cached(key, lambda: _build_jwks(moment), fresh=lambda held: held.fresh_at(moment))


def held_jwks(now: datetime | None = None) -> Document | None:
    """The JWKS this process holds, if it may be served as it is now (current generation,
    before the next scheduled transition); ``None`` when it must be built by ``jwks()``."""
    moment = now or timezone.now()
    held: Document | None = config_cache.held(
        ("idp-document", "jwks", _settings_epoch[0]), fresh=lambda copy: copy.fresh_at(moment)
    )
    return held


def _build_jwks(moment: datetime) -> Document:
    published = keys.published_keys(moment)
    max_age = app_settings.JWKS_CACHE_SECONDS if published.jwks["keys"] else 0
    return Document(_serialise(published.jwks), f"public, max-age={max_age}", published.valid_until)


_discovery: list[Document] = []


def openid_configuration() -> Document:
    """The discovery metadata (``idp.discovery.metadata``), built once per process."""
    if not _discovery:
        _discovery[:] = [Document(_serialise(discovery.metadata()), f"public, max-age={DISCOVERY_MAX_AGE}")]
    return _discovery[0]


def held_openid_configuration() -> Document | None:
    """The discovery document once built (settings only: it cannot go stale while they hold)."""
    return _discovery[0] if _discovery else None


def _settings_changed(**kwargs: Any) -> None:
    _discovery.clear()
    _settings_epoch[0] += 1


setting_changed.connect(_settings_changed, dispatch_uid="idp-documents-settings-changed")
