"""Moved models keep their content types (and so their admin permissions, admin log entries
and any generic relation): each ``django_content_type`` row gets its new ``app_label``.

On a fresh database there are no rows yet (``post_migrate`` creates them afterwards): nothing
to do. Where a row for the new label already exists, the old one is left to
``remove_stale_contenttypes``.
"""

from __future__ import annotations

from typing import Any

from django.db import migrations

MOVED: list[tuple[str, str, str]] = [
    ("idp", "clients", "client"),
    ("idp", "core", "signingkey"),
    ("idp", "core", "securityevent"),
    ("idp", "device_sessions", "authorizationcode"),
    ("idp", "shared_signals", "ssfreceiver"),
    ("idp", "shared_signals", "setdelivery"),
    ("idp", "shared_signals", "ssftransmitter"),
    ("idp", "shared_signals", "receivedset"),
    ("device_sessions", "risk", "riskpolicy"),
    ("device_sessions", "risk", "userriskprofile"),
    ("device_sessions", "risk", "deviceriskstate"),
    ("device_sessions", "risk", "usagereport"),
    ("device_sessions", "risk", "dailyusage"),
    ("device_sessions", "risk", "usagebaseline"),
    ("device_sessions", "risk", "stepupdemand"),
    ("attestation", "device_health", "healthpolicy"),
    ("attestation", "device_health", "healthrule"),
    ("attestation", "device_health", "devicehealth"),
    ("attestation", "device_health", "healthfinding"),
]


def _relabel(apps: Any, moves: list[tuple[str, str, str]]) -> None:
    content_type = apps.get_model("contenttypes", "ContentType")
    for old, new, model in moves:
        if not content_type.objects.filter(app_label=new, model=model).exists():
            content_type.objects.filter(app_label=old, model=model).update(app_label=new)


def forwards(apps: Any, schema_editor: Any) -> None:
    _relabel(apps, MOVED)


def backwards(apps: Any, schema_editor: Any) -> None:
    _relabel(apps, [(new, old, model) for old, new, model in MOVED])


class Migration(migrations.Migration):
    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("idp", "0009_models_out"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
