"""The OpenAPI document: drf-spectacular generates the DRF APIs (challenge, usage); the
protocol endpoints, plain Django views over Authlib, are described by hand in
``openapi_protocol.yaml`` and merged in here (a ``POSTPROCESSING_HOOKS`` entry), so
``manage.py spectacular`` writes one document (docs/openapi.yaml)."""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import Any

import yaml

PROTOCOL = Path(__file__).with_name("openapi_protocol.yaml")


@cache
def protocol_description() -> dict[str, Any]:
    return yaml.safe_load(PROTOCOL.read_text())


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``extra`` into ``base``, key by key; a value of ``extra`` wins unless both are mappings."""
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def add_protocol_endpoints(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular postprocessing hook (signature fixed by it)."""
    merged = _merge(result, protocol_description())
    merged["paths"] = dict(sorted(merged["paths"].items()))
    return merged
