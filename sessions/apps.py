from django.apps import AppConfig


class DeviceSessionsConfig(AppConfig):
    """Device-bound sessions and their token families.

    Labelled ``device_sessions`` because ``django.contrib.sessions`` owns ``sessions``.
    """

    name = "sessions"
    label = "device_sessions"
    verbose_name = "Device sessions and tokens"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        """Plug risk evaluation into token issue and userinfo (``idp.oauth.policy``); connect
        the revocation cascades (a revoked device, a deactivated user)."""
        from idp.oauth.policy import register_resource_policy, register_token_policy

        from .flows import cascade  # noqa: F401  (connects the cascades' receivers)
        from .risk.policy import evaluate_resource_request, evaluate_token_request

        register_token_policy(evaluate_token_request)
        register_resource_policy(evaluate_resource_request)
