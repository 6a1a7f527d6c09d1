"""State-only: the models moved between apps (docs/architecture.md); their tables stay as they
are (``Meta.db_table``), so no row moves. See tests/test_model_moves.py."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('attestation', '0004_delete_challenge'),
        ('clients', '0001_initial'),
        ('device_health', '0001_initial'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveField(
                    model_name='healthfinding',
                    name='health',
                ),
                migrations.RemoveField(
                    model_name='healthpolicy',
                    name='client',
                ),
                migrations.RemoveField(
                    model_name='healthrule',
                    name='policy',
                ),
                migrations.AlterField(
                    model_name='registeredapp',
                    name='client',
                    field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='registered_apps', to='clients.client'),
                ),
                migrations.DeleteModel(
                    name='DeviceHealth',
                ),
                migrations.DeleteModel(
                    name='HealthFinding',
                ),
                migrations.DeleteModel(
                    name='HealthPolicy',
                ),
                migrations.DeleteModel(
                    name='HealthRule',
                ),
            ],
        ),
    ]
