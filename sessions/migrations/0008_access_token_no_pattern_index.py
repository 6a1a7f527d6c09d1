"""No ``varchar_pattern_ops`` twin of the access tokens' ``jti`` index (issue 19): tokens are
found by exact ``jti`` (the unique index), never by ``LIKE 'x%'``, and every index costs the
insert every token response makes. PostgreSQL only (other databases have no such twin)."""

from __future__ import annotations

from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps


def drop_pattern_twin(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    table = apps.get_model("device_sessions", "AccessToken")._meta.db_table
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() AND tablename = %s"
            " AND indexdef LIKE %s", [table, "%varchar_pattern_ops%"],
        )
        names = [row[0] for row in cursor.fetchall()]
    for name in names:
        schema_editor.execute(f"DROP INDEX IF EXISTS {schema_editor.quote_name(name)}")


def restore_pattern_twin(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    model = apps.get_model("device_sessions", "AccessToken")
    statement = schema_editor._create_like_index_sql(  # type: ignore[attr-defined]  # PostgreSQL editor
        model, model._meta.get_field("jti"))
    if statement is not None:
        schema_editor.execute(statement)


class Migration(migrations.Migration):

    dependencies = [
        ("device_sessions", "0007_token_digests_as_bytes"),
    ]

    operations = [
        migrations.RunPython(drop_pattern_twin, restore_pattern_twin, elidable=False),
    ]
