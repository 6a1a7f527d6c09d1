"""Refresh-token and authorization-code hashes as their 32 raw SHA-256 bytes (issue 19): half
the index key of the 64-character hex spelling, and no second ``varchar_pattern_ops`` index on
PostgreSQL. Existing rows are converted in place (one UPDATE per table on PostgreSQL), so every
live refresh token and unused code keeps working."""

from typing import Any

from django.db import migrations, models

TABLES = (("refreshtoken", "token_hash"), ("authorizationcode", "code_hash"))


def _convert(apps: Any, schema_editor: Any, *, to_bytes: bool) -> None:
    quote = schema_editor.connection.ops.quote_name
    for model_name, column in TABLES:
        model = apps.get_model("device_sessions", model_name)
        table, hexed, raw = quote(model._meta.db_table), column, f"{column}_new"
        source, target = (hexed, raw) if to_bytes else (raw, hexed)
        if schema_editor.connection.vendor == "postgresql":
            value = f"decode({quote(source)}, 'hex')" if to_bytes else f"encode({quote(source)}, 'hex')"
            schema_editor.execute(f"UPDATE {table} SET {quote(target)} = {value}")
            continue
        for pk, stored in model.objects.values_list("pk", source).iterator():
            converted = bytes.fromhex(stored) if to_bytes else bytes(stored).hex()
            model.objects.filter(pk=pk).update(**{target: converted})


def to_bytes(apps: Any, schema_editor: Any) -> None:
    _convert(apps, schema_editor, to_bytes=True)


def to_hex(apps: Any, schema_editor: Any) -> None:
    _convert(apps, schema_editor, to_bytes=False)


def _before(model_name: str, column: str) -> list[Any]:
    """A nullable byte column beside the hex one, which loses its constraints (so that, reversed,
    the hex column comes back empty and is filled before it is unique and required again)."""
    return [
        migrations.AddField(model_name=model_name, name=f"{column}_new", field=models.BinaryField(null=True)),
        migrations.AlterField(model_name=model_name, name=column, field=models.CharField(max_length=64, null=True)),
    ]


def _after(model_name: str, column: str) -> list[Any]:
    """The byte column takes the name, unique and required."""
    return [
        migrations.RemoveField(model_name=model_name, name=column),
        migrations.RenameField(model_name=model_name, old_name=f"{column}_new", new_name=column),
        migrations.AlterField(model_name=model_name, name=column, field=models.BinaryField(max_length=32, unique=True)),
    ]


class Migration(migrations.Migration):
    dependencies = [("device_sessions", "0006_authorization_code_in_risk_out")]

    operations = [
        *_before("refreshtoken", "token_hash"),
        *_before("authorizationcode", "code_hash"),
        migrations.RunPython(to_bytes, to_hex),
        *_after("refreshtoken", "token_hash"),
        *_after("authorizationcode", "code_hash"),
    ]
