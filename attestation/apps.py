from django.apps import AppConfig


class AttestationConfig(AppConfig):
    name = "attestation"
    verbose_name = "Device attestation"
    default_auto_field = "django.db.models.BigAutoField"
