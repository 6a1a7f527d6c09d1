from django.apps import AppConfig

from core.sql import Part


class DeviceHealthConfig(AppConfig):
    """Device health: facts per device, per-client rules, and their outcome at every token issue."""

    name = "device_health"
    label = "device_health"
    verbose_name = "Device health"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Django's app registry: models and the flows that use them load once apps are ready.
        from sessions.flows.refresh import load_with_device

        from .policy import register as register_health_policies

        register_health_policies()  # device health on the token/resource policy seam
        load_with_device(_health_part)


def _health_part() -> Part:
    """The device's last health evaluation, joined into the refresh-token lookup."""
    from .models import DeviceHealth  # models load after the app registry

    return Part(DeviceHealth, "h", on="h.device_id = d.id", parent="d", attr="health", outer=True)
