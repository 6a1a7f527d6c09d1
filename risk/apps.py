from django.apps import AppConfig

from core.sql import Part


class RiskConfig(AppConfig):
    """Risk evaluation: impossible travel, usage baselines, step-up demands."""

    name = "risk"
    label = "risk"
    verbose_name = "Risk evaluation"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        """Plug risk evaluation into token issue and userinfo (``core.policy``), and the device's
        risk state into the refresh-token lookup."""
        from core.policy import register_resource_policy, register_token_policy
        from sessions.flows.refresh import load_with_device

        from .policy import evaluate_resource_request, evaluate_token_request

        register_token_policy(evaluate_token_request)
        register_resource_policy(evaluate_resource_request)
        load_with_device(_risk_state_part)


def _risk_state_part() -> Part:
    """The device's last Play Integrity level, joined into the refresh-token lookup."""
    from .models import DeviceRiskState  # models load after the app registry

    return Part(DeviceRiskState, "r", on="r.device_id = d.id", parent="d", attr="risk_state", outer=True)
