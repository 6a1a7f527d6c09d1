from django.apps import AppConfig


class CoreConfig(AppConfig):
    """The shared library's storage: signing keys and the security event log."""

    name = "core"
    label = "core"
    verbose_name = "Keys and security events"
    default_auto_field = "django.db.models.BigAutoField"
