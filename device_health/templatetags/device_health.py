"""``{% device_restrictions user as restrictions %}`` for the account page's device-health include."""

from __future__ import annotations

from typing import Any

from django import template

from device_health.user_view import restrictions_for

register = template.Library()


@register.simple_tag
def device_restrictions(user: Any) -> list[dict[str, Any]]:
    return restrictions_for(user)
