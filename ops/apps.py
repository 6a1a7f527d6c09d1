from django.apps import AppConfig


class OpsConfig(AppConfig):
    """Metrics, probes, request ids and JSON logs (docs/operations.md "Metrics")."""

    name = "ops"
    label = "ops"
    verbose_name = "Operations"

    def ready(self) -> None:
        from django.conf import settings

        from core import events

        from . import celery_metrics, checks, event_metrics

        checks.register()
        if getattr(settings, "VIGIL_OBSERVABILITY", True):
            events.subscribe(event_metrics.count)
            celery_metrics.connect()
