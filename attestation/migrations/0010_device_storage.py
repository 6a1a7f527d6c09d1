"""The attested devices every refresh writes (issue 19; ``core.schema``): an App Attest
assertion advances ``counter`` and a Play Integrity verdict is merged into the row, on every
refresh. The ``app_id`` index goes (the unique ``(app_id, key_id)`` serves look-ups by app), as
does, on PostgreSQL, the ``varchar_pattern_ops`` twin of ``status`` (matched exactly); the table
gets ``fillfactor = 90`` and ``autovacuum_vacuum_scale_factor = 0.02`` so those updates, which
touch no indexed column, are HOT.
"""

from __future__ import annotations

import django.db.models.deletion
from django.db import migrations, models
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps

from core.schema import HOT_TABLE_STORAGE, drop_pattern_twins, reset_storage, restore_pattern_twins, set_storage


def leaner(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    drop_pattern_twins(schema_editor, "attestation_device")
    set_storage(schema_editor, "attestation_device", HOT_TABLE_STORAGE)


def as_before(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    restore_pattern_twins(schema_editor, apps.get_model("attestation", "Device"), "status")
    reset_storage(schema_editor, "attestation_device", list(HOT_TABLE_STORAGE))


class Migration(migrations.Migration):

    dependencies = [
        ('attestation', '0009_android_revocation_list'),
    ]

    operations = [
        migrations.AlterField(
            model_name='device',
            name='app',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='devices', to='attestation.registeredapp'),
        ),
        migrations.RunPython(leaner, as_before, elidable=False),
    ]
