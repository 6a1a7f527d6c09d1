from django.apps import AppConfig


class IdpConfig(AppConfig):
    name = "idp"
    label = "idp"
    verbose_name = "OAuth 2.0 / OpenID Connect provider"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers system checks)
