"""``SecurityEvent.outcome`` takes its choices from ``core.models.Outcome`` (the admin shows and
filters them). The stored values are the ones always written: no column or data change."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('core', '0003_security_event_fewer_indexes'),
    ]

    operations = [
        migrations.AlterField(
            model_name='securityevent',
            name='outcome',
            field=models.CharField(choices=[('success', 'success'), ('failure', 'failure'), ('denied', 'denied'), ('info', 'info'), ('detected', 'detected'), ('taken', 'taken'), ('recorded', 'recorded'), ('required', 'required')], max_length=20),
        ),
    ]
