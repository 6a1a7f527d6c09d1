from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.core.management import call_command
from django.db.models.signals import post_migrate


def create_cache_tables(using: str = "default", **kwargs: Any) -> None:
    """``migrate`` also creates the database cache's table (``createcachetable``, which skips
    a table that exists and caches that are not database caches), so a first start needs no
    other step, and switching from Redis to the database cache later needs only ``migrate``."""
    call_command("createcachetable", database=using, verbosity=0)


class IdpConfig(AppConfig):
    name = "idp"
    label = "idp"
    verbose_name = "OAuth 2.0 / OpenID Connect provider"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        import warnings

        from accounts import authstate
        from clients.models import Client
        from core import config_cache
        from core.models import SigningKey

        from . import checks  # noqa: F401  (registers system checks)
        from .backchannel import listener  # noqa: F401  (subscribes to session_revoked)
        from .flows import step_up  # noqa: F401  (sign-ins answer open step-up demands)
        from .flows.authorize import LOGIN_MARK

        config_cache.watch(Client, SigningKey)
        authstate.CARRIED_ACROSS_SIGN_IN.add(LOGIN_MARK)  # a sign-in as someone else answers it too
        post_migrate.connect(create_cache_tables, sender=self, dispatch_uid="idp.create_cache_tables")

        # Clients may choose "EdDSA" (what today's JOSE libraries verify); RFC 9864 prefers the
        # fully specified "Ed25519" name, which joserfc flags on every use of the old one.
        warnings.filterwarnings("ignore", message="EdDSA is deprecated via RFC 9864")
