from django.apps import AppConfig


class AttestationConfig(AppConfig):
    name = "attestation"
    verbose_name = "Device attestation"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from core import config_cache

        from . import checks  # noqa: F401  (registers system checks)
        from .models import RegisteredApp

        config_cache.watch(RegisteredApp)
