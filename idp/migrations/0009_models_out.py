"""State-only: the models moved between apps (docs/architecture.md); their tables stay as they
are (``Meta.db_table``), so no row moves. See tests/test_model_moves.py."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('idp', '0008_ssf_help_texts'),
        ('clients', '0001_initial'),
        ('core', '0001_initial'),
        ('shared_signals', '0001_initial'),
        ('device_sessions', '0006_authorization_code_in_risk_out'),
        ('attestation', '0005_device_health_out'),
        ('risk', '0001_initial'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveField(
                    model_name='authorizationcode',
                    name='client',
                ),
                migrations.RemoveField(
                    model_name='authorizationcode',
                    name='user',
                ),
                migrations.RemoveField(
                    model_name='ssftransmitter',
                    name='client',
                ),
                migrations.AlterField(
                    model_name='consent',
                    name='client',
                    field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, to='clients.client'),
                ),
                migrations.RemoveField(
                    model_name='ssfreceiver',
                    name='client',
                ),
                migrations.RemoveField(
                    model_name='receivedset',
                    name='transmitter',
                ),
                migrations.RemoveField(
                    model_name='securityevent',
                    name='user',
                ),
                migrations.RemoveField(
                    model_name='setdelivery',
                    name='receiver',
                ),
                migrations.DeleteModel(
                    name='SigningKey',
                ),
                migrations.DeleteModel(
                    name='AuthorizationCode',
                ),
                migrations.DeleteModel(
                    name='Client',
                ),
                migrations.DeleteModel(
                    name='ReceivedSet',
                ),
                migrations.DeleteModel(
                    name='SsfTransmitter',
                ),
                migrations.DeleteModel(
                    name='SecurityEvent',
                ),
                migrations.DeleteModel(
                    name='SetDelivery',
                ),
                migrations.DeleteModel(
                    name='SsfReceiver',
                ),
            ],
        ),
    ]
