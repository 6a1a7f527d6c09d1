from django.apps import AppConfig


class AttestationConfig(AppConfig):
    name = "attestation"
    verbose_name = "Device attestation"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers system checks)
        from .health.policy import register as register_health_policies

        from idp import config_cache

        from .models import RegisteredApp

        register_health_policies()  # device health on the token/resource policy seam
        config_cache.watch(RegisteredApp)
