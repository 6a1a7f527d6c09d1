from django.apps import AppConfig


class ClientsConfig(AppConfig):
    """Registered OAuth clients (relying parties)."""

    name = "clients"
    label = "clients"
    verbose_name = "OAuth clients"
    default_auto_field = "django.db.models.BigAutoField"
