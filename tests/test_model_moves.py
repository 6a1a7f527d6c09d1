"""The models that moved between apps (issue 14) keep their rows: on PostgreSQL, the database
is migrated back to where they still lived in their old apps, a row goes into every moved
table through the old models, and after migrating forward every row reads back through the
new models; content types (and so admin permissions) carry the new app labels."""

from __future__ import annotations

import hashlib
import itertools
from datetime import date
from typing import Any

import pytest
from django.apps import apps as current_apps
from django.contrib.auth.models import Permission
from django.db import connection, models
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

BEFORE = [
    ("idp", "0008_ssf_help_texts"),
    ("device_sessions", "0005_devicesession_last_place"),
    ("attestation", "0004_delete_challenge"),
]
# (old app label, new app label, model), parents before children.
MOVED = [
    ("idp", "clients", "Client"),
    ("idp", "core", "SigningKey"),
    ("idp", "core", "SecurityEvent"),
    ("idp", "device_sessions", "AuthorizationCode"),
    ("idp", "shared_signals", "SsfReceiver"),
    ("idp", "shared_signals", "SetDelivery"),
    ("idp", "shared_signals", "SsfTransmitter"),
    ("idp", "shared_signals", "ReceivedSet"),
    ("device_sessions", "risk", "RiskPolicy"),
    ("device_sessions", "risk", "UserRiskProfile"),
    ("device_sessions", "risk", "DeviceRiskState"),
    ("device_sessions", "risk", "UsageReport"),
    ("device_sessions", "risk", "DailyUsage"),
    ("device_sessions", "risk", "UsageBaseline"),
    ("device_sessions", "risk", "StepUpDemand"),
    ("attestation", "device_health", "HealthPolicy"),
    ("attestation", "device_health", "HealthRule"),
    ("attestation", "device_health", "DeviceHealth"),
    ("attestation", "device_health", "HealthFinding"),
]
_counter = itertools.count(1)


def _value(field: models.Field, apps: Any, made: dict[str, Any]) -> Any:
    """A valid value for a required field (the first choice, a unique string...)."""
    if field.is_relation:
        related = field.related_model
        assert related is not None and not isinstance(related, str)
        return made.get(related._meta.label_lower) or _row(related, apps, made)
    if field.choices:
        return field.choices[0][0]
    n = next(_counter)
    if field.name in {"token_hash", "code_hash"}:  # SHA-256 hex, as stored before sessions 0007
        return hashlib.sha256(f"v{n}".encode()).hexdigest()
    by_type: dict[type, Any] = {
        models.DateTimeField: timezone.now(), models.DateField: date(2026, 1, 1), models.JSONField: {},
        models.BooleanField: False, models.GenericIPAddressField: "192.0.2.1", models.URLField: f"https://rp{n}.example/",
    }
    for kind, value in by_type.items():
        if isinstance(field, kind):
            return value
    if isinstance(field, (models.IntegerField, models.FloatField, models.DecimalField)):
        return n
    return f"v{n}"[: field.max_length or 64]


def _row(model: Any, apps: Any, made: dict[str, Any]) -> Any:
    values = {
        field.name: _value(field, apps, made)
        for field in model._meta.concrete_fields
        if not field.primary_key and not field.null and not field.has_default() and not field.blank
    }
    values.update({
        field.name: _value(field, apps, made)
        for field in model._meta.concrete_fields
        if field.is_relation and not field.null and field.name not in values
    })
    instance = model.objects.create(**values)
    made[model._meta.label_lower] = instance
    return instance


def _migrate(targets: list[tuple[str, str]] | None = None) -> Any:
    executor = MigrationExecutor(connection)
    executor.migrate(targets or executor.loader.graph.leaf_nodes())
    return executor


def test_every_moved_table_keeps_its_rows_and_permissions() -> None:
    executor = _migrate(BEFORE)
    old_apps = executor.loader.project_state(BEFORE).apps
    made: dict[str, Any] = {}
    rows = {model: _row(old_apps.get_model(old, model), old_apps, made).pk for old, _, model in MOVED}
    old_permissions = {
        (ct, codename) for ct, codename in Permission.objects.filter(
            content_type__app_label__in={old for old, _, _ in MOVED}
        ).values_list("content_type__model", "codename")
    }

    _migrate()

    for _, new, model in MOVED:
        new_model = current_apps.get_model(new, model)
        assert new_model.objects.filter(pk=rows[model]).exists(), f"{new}.{model} lost its row"
        assert Permission.objects.filter(content_type__app_label=new, content_type__model=model.lower(),
                                         codename=f"change_{model.lower()}").exists()
    moved_names = {model.lower() for _, _, model in MOVED}
    assert {(ct, codename) for ct, codename in old_permissions if ct in moved_names} <= set(
        Permission.objects.filter(content_type__app_label__in={new for _, new, _ in MOVED})
        .values_list("content_type__model", "codename")
    )


def test_token_hashes_become_their_bytes_and_every_token_still_matches() -> None:
    """sessions 0007 (issue 19): refresh-token and code hashes stored as hex are converted in
    place to the 32 bytes ``core.crypto.token_digest`` looks up, and back on reverse."""
    from core.crypto import token_digest, token_hash

    before = [("device_sessions", "0006_authorization_code_in_risk_out")]
    executor = _migrate(before)
    old_apps = executor.loader.project_state(before).apps
    made: dict[str, Any] = {}
    token = _row(old_apps.get_model("device_sessions", "RefreshToken"), old_apps, made)
    code = _row(old_apps.get_model("device_sessions", "AuthorizationCode"), old_apps, made)
    type(token).objects.filter(pk=token.pk).update(token_hash=token_hash("a refresh token"))
    type(code).objects.filter(pk=code.pk).update(code_hash=token_hash("a code"))

    _migrate()

    from sessions.models import AuthorizationCode, RefreshToken

    assert RefreshToken.objects.get(token_hash=token_digest("a refresh token")).pk == token.pk
    assert AuthorizationCode.objects.get(code_hash=token_digest("a code")).pk == code.pk
    with connection.cursor() as cursor:  # no second (LIKE) index beside the unique one
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE tablename = %s", [RefreshToken._meta.db_table])
        definitions = [row[0] for row in cursor.fetchall()]
    assert not any("pattern_ops" in d for d in definitions), definitions

    executor = _migrate(before)
    old_apps = executor.loader.project_state(before).apps
    reverted = old_apps.get_model("device_sessions", "RefreshToken").objects.get(pk=token.pk)
    assert reverted.token_hash == token_hash("a refresh token")
    _migrate()
