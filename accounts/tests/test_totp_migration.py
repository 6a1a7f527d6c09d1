"""Migration accounts.0003 on PostgreSQL with existing rows: TOTP secrets sealed the old way
become Fernet tokens in a widened column, the same authenticator code still verifies, and the
migration reverses to the old format."""

from __future__ import annotations

import importlib
import secrets
import uuid
from typing import Any

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django_otp.oath import totp as oath_totp

from accounts.models import SealedTOTPDevice

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
BEFORE = [("accounts", "0002_passkeys_browser_sessions_sealed_totp")]
AFTER = [("accounts", "0003_totp_secrets_fernet")]
migration = importlib.import_module("accounts.migrations.0003_totp_secrets_fernet")


def migrate(targets: list[tuple[str, str]]) -> Any:
    """Migrate to ``targets`` and return the historical apps there."""
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def key_column_length() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT character_maximum_length FROM information_schema.columns"
            " WHERE table_name = 'otp_totp_totpdevice' AND column_name = 'key'"
        )
        return int(cursor.fetchone()[0])


def code_for(raw: bytes) -> str:
    return str(oath_totp(raw)).zfill(6)


@pytest.fixture
def at_leaf() -> Any:
    yield
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())


def test_sealed_rows_become_fernet_and_the_same_code_verifies(at_leaf: Any, settings: Any) -> None:
    apps = migrate(BEFORE)
    assert key_column_length() == 80
    user = apps.get_model("accounts", "User").objects.create(username="old-totp", subject=uuid.uuid4())
    devices = apps.get_model("otp_totp", "TOTPDevice").objects
    sealed_raw, plain_raw = secrets.token_bytes(20), secrets.token_bytes(20)
    sealed = devices.create(user=user, name="sealed", confirmed=True, key=migration.old_seal(sealed_raw))
    plain = devices.create(user=user, name="plain", confirmed=True, key=plain_raw.hex())
    real_secret = settings.IDP_KEY_ENCRYPTION_SECRET
    settings.IDP_KEY_ENCRYPTION_SECRET = "a-secret-long-gone"
    orphan_key = migration.old_seal(secrets.token_bytes(20))
    settings.IDP_KEY_ENCRYPTION_SECRET = real_secret
    orphan = devices.create(user=user, name="orphan", confirmed=True, key=orphan_key)

    migrate(AFTER)
    assert key_column_length() == 160
    for device, raw in ((sealed, sealed_raw), (plain, plain_raw)):
        current = SealedTOTPDevice.objects.get(pk=device.pk)
        assert len(current.key) == 120 and raw.hex() not in current.key
        assert current.bin_key == raw
        assert current.verify_token(code_for(raw))
    assert SealedTOTPDevice.objects.get(pk=orphan.pk).key == orphan_key  # unusable before, untouched

    migrate(BEFORE)
    assert key_column_length() == 80
    back = apps.get_model("otp_totp", "TOTPDevice").objects
    for device, raw in ((sealed, sealed_raw), (plain, plain_raw)):
        stored = back.get(pk=device.pk).key
        assert len(stored) == 72 and migration.old_open(stored) == raw


def test_reversal_stops_on_a_token_no_secret_opens(at_leaf: Any, settings: Any, django_user_model: Any) -> None:
    migrate(AFTER)
    user = django_user_model.objects.create(username="new-totp")
    SealedTOTPDevice.create_sealed(user, "new")
    settings.IDP_KEY_ENCRYPTION_SECRET = "another-secret-entirely"
    with pytest.raises(RuntimeError, match="decrypts its key"):
        migrate(BEFORE)
