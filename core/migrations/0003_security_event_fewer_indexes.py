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

from core import schema

PATTERN_TWINS = ("event_type", "reason", "client_id")


def drop_pattern_twins(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    schema.drop_pattern_twins(schema_editor, apps.get_model("core", "SecurityEvent")._meta.db_table)


def restore_pattern_twins(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    schema.restore_pattern_twins(schema_editor, apps.get_model("core", "SecurityEvent"), *PATTERN_TWINS)


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
