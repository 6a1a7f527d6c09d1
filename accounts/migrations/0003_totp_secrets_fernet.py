"""TOTP secrets move from the home-made sealed format to the project's Fernet
(``core.crypto.encrypt``), in django-otp's ``TOTPDevice.key`` column.

Where the ciphertext lives. A Fernet token of a 20-byte secret is 120 characters and
django-otp declares ``key`` as ``varchar(80)``. An ``AlterField`` on django-otp's model from
this app is not ours to make, and storing the token in a table of ours would cost a query
(or a join) on every TOTP check while django-otp's column kept a key that is not the user's.
So, on PostgreSQL, this migration widens the column in the database only
(``ALTER COLUMN key TYPE varchar(160)``, room for a token of django-otp's largest 40-byte
key) and leaves the migration state at 80. That state only matters to ``full_clean`` and
forms, and no form edits ``key`` (django-otp's admins are unregistered; ``accounts.admin``
shows devices read-only). SQLite does not enforce ``varchar`` lengths, so nothing is altered
there. Caveat (docs/operations.md): a future django-otp migration that alters ``key`` would
narrow the column again and fail on these rows; run ``widen_key_column`` again after it.

Rows. Forward: every sealed value (72 hex characters) and every plaintext value django-otp
wrote itself (40 hex) becomes a Fernet token; a sealed value that no configured secret opens
is left as it is (it was already unusable). Reverse: every Fernet token goes back to the old
sealed format (a token no configured secret opens stops the reversal), then the column goes
back to ``varchar(80)``. The old cipher is frozen below, as it was, because a migration must
not depend on code that changes; the Fernet side is the project's own ``core.crypto``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps

from core import crypto

SECRET_BYTES = 20
SALT_BYTES = 8
TAG_BYTES = 8
SEALED_HEX_LENGTH = 2 * (SALT_BYTES + SECRET_BYTES + TAG_BYTES)
PLAINTEXT_HEX_LENGTH = 2 * SECRET_BYTES
WIDE, NARROW = 160, 80


# ------------------------------------------------------------------ the old cipher, frozen
def _old_secrets() -> list[str]:
    return [settings.IDP_KEY_ENCRYPTION_SECRET, *getattr(settings, "IDP_KEY_ENCRYPTION_SECRET_FALLBACKS", [])]


def _derive(secret: str, salt: bytes) -> tuple[bytes, bytes]:
    material = HKDF(algorithm=hashes.SHA256(), length=SECRET_BYTES + 32, salt=salt, info=b"vigil-totp-secret").derive(
        secret.encode()
    )
    return material[:SECRET_BYTES], material[SECRET_BYTES:]


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def old_seal(raw: bytes) -> str:
    """The sealed format before this migration: hex of salt || secret XOR HKDF stream || tag."""
    salt = secrets.token_bytes(SALT_BYTES)
    stream, mac_key = _derive(settings.IDP_KEY_ENCRYPTION_SECRET, salt)
    body = salt + _xor(raw, stream)
    return (body + hmac.new(mac_key, body, hashlib.sha256).digest()[:TAG_BYTES]).hex()


def old_open(stored: str) -> bytes | None:
    """The raw secret of a sealed value, or ``None`` when no configured secret opens it."""
    data = bytes.fromhex(stored)
    salt, cipher, tag = data[:SALT_BYTES], data[SALT_BYTES:-TAG_BYTES], data[-TAG_BYTES:]
    for secret in _old_secrets():
        stream, mac_key = _derive(secret, salt)
        if hmac.compare_digest(hmac.new(mac_key, salt + cipher, hashlib.sha256).digest()[:TAG_BYTES], tag):
            return _xor(cipher, stream)
    return None


# ------------------------------------------------------------------ the column
def _alter_key_column(schema_editor: BaseDatabaseSchemaEditor, apps: StateApps, length: int) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    table = apps.get_model("otp_totp", "TOTPDevice")._meta.db_table
    schema_editor.execute(
        f"ALTER TABLE {schema_editor.quote_name(table)} ALTER COLUMN {schema_editor.quote_name('key')} TYPE varchar({length})"
    )


def widen_key_column(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    _alter_key_column(schema_editor, apps, WIDE)


def narrow_key_column(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    _alter_key_column(schema_editor, apps, NARROW)


# ------------------------------------------------------------------ the rows
def _devices(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> Any:
    model = apps.get_model("otp_totp", "TOTPDevice")
    return model.objects.using(schema_editor.connection.alias)


def to_fernet(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    devices = _devices(apps, schema_editor)
    for pk, stored in devices.values_list("pk", "key").iterator():
        if len(stored) == SEALED_HEX_LENGTH:
            raw = old_open(stored)
        elif len(stored) == PLAINTEXT_HEX_LENGTH:
            raw = bytes.fromhex(stored)
        else:
            continue
        if raw is not None:
            devices.filter(pk=pk).update(key=crypto.encrypt(raw))


def to_old_seal(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    devices = _devices(apps, schema_editor)
    for pk, stored in devices.values_list("pk", "key").iterator():
        if len(stored) in (SEALED_HEX_LENGTH, PLAINTEXT_HEX_LENGTH):
            continue
        try:
            raw = crypto.decrypt(stored)
        except crypto.DecryptionError as exc:
            raise RuntimeError(f"TOTP device {pk}: no configured IDP_KEY_ENCRYPTION_SECRET decrypts its key") from exc
        devices.filter(pk=pk).update(key=old_seal(raw))


class Migration(migrations.Migration):

    dependencies = [
        ("accounts", "0002_passkeys_browser_sessions_sealed_totp"),
        ("otp_totp", "0003_add_timestamps"),
    ]

    operations = [
        migrations.RunPython(widen_key_column, narrow_key_column, elidable=False),
        migrations.RunPython(to_fernet, to_old_seal, elidable=False),
    ]
