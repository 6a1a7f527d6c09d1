from django.apps import AppConfig


class DeviceSessionsConfig(AppConfig):
    """Device-bound sessions and their token families.

    Labelled ``device_sessions`` because ``django.contrib.sessions`` owns ``sessions``.
    """

    name = "sessions"
    label = "device_sessions"
    verbose_name = "Device sessions and tokens"
    default_auto_field = "django.db.models.BigAutoField"


    def ready(self) -> None:
        from .flows import cascade  # noqa: F401  (connects the user-deactivation and device-revocation cascades)
