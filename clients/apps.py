from django.apps import AppConfig


class ClientsConfig(AppConfig):
    """Registered OAuth clients (relying parties)."""

    name = "clients"
    label = "clients"
    verbose_name = "OAuth clients"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from core.keys import register_client_key_needs

        from . import checks  # noqa: F401  (registers the theme checks)
        from .keys import longest_access_token_lifetime, signing_alg_choices

        register_client_key_needs(longest_access_token_lifetime, signing_alg_choices)
