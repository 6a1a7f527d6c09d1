"""Fewer indexes on the security events (issue 19): every index costs every insert, and an
attested refresh inserts two events. Dropped: ``outcome`` (four values: never selective),
``session_id`` alone (``idp_secevent_session_id`` on (session_id, id) covers it) and, on
PostgreSQL, the ``varchar_pattern_ops`` twins Django adds to indexed text columns for
``LIKE 'x%'`` (nothing queries events so; the admin's search is ``icontains``, which no btree
serves). Kept: created_at, event_type, reason, client_id, user, (session_id, id)."""

from __future__ import annotations

from django.db import migrations, models
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps

PATTERN_TWINS = ("event_type", "reason", "client_id")


def drop_pattern_twins(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    table = apps.get_model("core", "SecurityEvent")._meta.db_table
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() AND tablename = %s"
            " AND indexdef LIKE %s", [table, "%varchar_pattern_ops%"],
        )
        names = [row[0] for row in cursor.fetchall()]
    for name in names:
        schema_editor.execute(f"DROP INDEX IF EXISTS {schema_editor.quote_name(name)}")


def restore_pattern_twins(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    model = apps.get_model("core", "SecurityEvent")
    for name in PATTERN_TWINS:
        statement = schema_editor._create_like_index_sql(  # type: ignore[attr-defined]  # PostgreSQL editor
            model, model._meta.get_field(name))
        if statement is not None:
            schema_editor.execute(statement)


class Migration(migrations.Migration):

    dependencies = [
        ('core', '0002_security_event_request_id'),
    ]

    operations = [
        migrations.AlterField(
            model_name='securityevent',
            name='outcome',
            field=models.CharField(help_text='success, failure, denied, info', max_length=20),
        ),
        migrations.AlterField(
            model_name='securityevent',
            name='session_id',
            field=models.CharField(blank=True, max_length=64),
        ),
        migrations.RunPython(drop_pattern_twins, restore_pattern_twins, elidable=False),
    ]
