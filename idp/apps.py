from django.apps import AppConfig


class IdpConfig(AppConfig):
    name = "idp"
    label = "idp"
    verbose_name = "OAuth 2.0 / OpenID Connect provider"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        import warnings

        from sessions.flows import cascade  # noqa: F401  (connects the user-deactivation cascade)

        from . import checks  # noqa: F401  (registers system checks)
        from . import config_cache
        from .models import Client, SigningKey

        config_cache.watch(Client, SigningKey)

        # Clients may choose "EdDSA" (what today's JOSE libraries verify); RFC 9864 prefers the
        # fully specified "Ed25519" name, which joserfc flags on every use of the old one.
        warnings.filterwarnings("ignore", message="EdDSA is deprecated via RFC 9864")
