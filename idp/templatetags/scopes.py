"""``{{ scope|describe_scope }}``: the consent page's plain-language scope descriptions."""

from __future__ import annotations

from django import template

from ..scope_descriptions import describe

register = template.Library()


@register.filter
def describe_scope(scope: str) -> str:
    return describe(str(scope))
