from django.apps import AppConfig


class OpsConfig(AppConfig):
    """Metrics, probes, request ids and JSON logs (docs/operations.md "Metrics")."""

    name = "ops"
    label = "ops"
    verbose_name = "Operations"

    def ready(self) -> None:
        from core import events

        from . import celery_metrics, checks, event_metrics

        events.subscribe(event_metrics.count)
        celery_metrics.connect()
        checks.register()
