"""No ``varchar_pattern_ops`` twin of the access tokens' ``jti`` index (issue 19): tokens are
found by exact ``jti`` (the unique index), never by ``LIKE 'x%'``, and every index costs the
insert every token response makes. PostgreSQL only (other databases have no such twin)."""

from __future__ import annotations

from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps

from core.schema import drop_pattern_twins, restore_pattern_twins


def drop_pattern_twin(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    drop_pattern_twins(schema_editor, apps.get_model("device_sessions", "AccessToken")._meta.db_table)


def restore_pattern_twin(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    restore_pattern_twins(schema_editor, apps.get_model("device_sessions", "AccessToken"), "jti")


class Migration(migrations.Migration):

    dependencies = [
        ("device_sessions", "0007_token_digests_as_bytes"),
    ]

    operations = [
        migrations.RunPython(drop_pattern_twin, restore_pattern_twin, elidable=False),
    ]
