from django.apps import AppConfig


class DeviceHealthConfig(AppConfig):
    """Device health: facts per device, per-client rules, and their outcome at every token issue."""

    name = "device_health"
    label = "device_health"
    verbose_name = "Device health"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from .policy import register as register_health_policies

        register_health_policies()  # device health on the token/resource policy seam
