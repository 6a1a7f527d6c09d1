from django.apps import AppConfig


class SharedSignalsConfig(AppConfig):
    """OpenID Shared Signals: Vigil as a Transmitter and a Receiver of Security Event Tokens."""

    name = "shared_signals"
    label = "shared_signals"
    verbose_name = "Shared signals (SSF / CAEP)"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import signals  # noqa: F401  (subscribes the transmitter to the revocation announcements)
