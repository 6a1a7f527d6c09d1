from django.apps import AppConfig


class RiskConfig(AppConfig):
    """Risk evaluation: impossible travel, usage baselines, step-up demands."""

    name = "risk"
    label = "risk"
    verbose_name = "Risk evaluation"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        """Plug risk evaluation into token issue and userinfo (``core.policy``)."""
        from core.policy import register_resource_policy, register_token_policy

        from .policy import evaluate_resource_request, evaluate_token_request

        register_token_policy(evaluate_token_request)
        register_resource_policy(evaluate_resource_request)
