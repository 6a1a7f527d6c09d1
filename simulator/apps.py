from django.apps import AppConfig


class SimulatorConfig(AppConfig):
    """Developer and test tool: simulated devices, and the ``device_demo`` command. No models."""

    name = "simulator"
    label = "simulator"
    verbose_name = "Device simulator (development)"
