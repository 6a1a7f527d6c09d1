"""The tables every refresh writes, leaner (issue 19; ``core.schema``): a family is inserted by
every code exchange and updated by every refresh, a refresh token inserted by both and updated
(``rotated_at``) by the next refresh.

- ``sessions_device_session`` loses four of its eleven indexes: ``user_id`` alone (the
  ``(user_id, status)`` index serves look-ups by user) and, on PostgreSQL, the
  ``varchar_pattern_ops`` twins of ``sid``, ``browser_sid`` and ``status`` (all three are
  matched exactly, never with ``LIKE 'x%'``).
- Both tables get ``fillfactor = 90`` and ``autovacuum_vacuum_scale_factor = 0.02``
  (PostgreSQL), the settings docs/operations.md advised by hand: the refresh's updates touch no
  indexed column, so with room on the page they are HOT and write no index entry.
"""

from __future__ import annotations

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps

from core.schema import HOT_TABLE_STORAGE, drop_pattern_twins, reset_storage, restore_pattern_twins, set_storage

TABLES = ("sessions_device_session", "sessions_refresh_token")


def leaner(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    drop_pattern_twins(schema_editor, "sessions_device_session")
    for table in TABLES:
        set_storage(schema_editor, table, HOT_TABLE_STORAGE)


def as_before(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    restore_pattern_twins(schema_editor, apps.get_model("device_sessions", "DeviceSession"), "sid", "browser_sid", "status")
    for table in TABLES:
        reset_storage(schema_editor, table, list(HOT_TABLE_STORAGE))


class Migration(migrations.Migration):

    dependencies = [
        ('device_sessions', '0009_code_exchanged_jkt'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterField(
            model_name='devicesession',
            name='user',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='device_sessions', to=settings.AUTH_USER_MODEL),
        ),
        migrations.RunPython(leaner, as_before, elidable=False),
    ]
