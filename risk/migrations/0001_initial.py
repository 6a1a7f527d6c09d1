"""State-only: the models moved between apps (docs/architecture.md); their tables stay as they
are (``Meta.db_table``), so no row moves. See tests/test_model_moves.py."""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('attestation', '0004_delete_challenge'),
        ('clients', '0001_initial'),
        ('device_sessions', '0005_devicesession_last_place'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='DeviceRiskState',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('integrity_level', models.CharField(blank=True, help_text='strong, device, basic or none.', max_length=10)),
                        ('updated_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('device', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='risk_state', to='attestation.device')),
                    ],
                    options={
                        'db_table': 'sessions_device_risk_state',
                    },
                ),
                migrations.CreateModel(
                    name='RiskPolicy',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('impossible_travel', models.CharField(choices=[('record', 'Record only'), ('step_up', 'Require step-up (MFA)'), ('revoke', 'Revoke the session and its token family')], default='step_up', help_text="Action when 'Impossible travel' fires.", max_length=10)),
                        ('volume_anomaly', models.CharField(choices=[('record', 'Record only'), ('step_up', 'Require step-up (MFA)'), ('revoke', 'Revoke the session and its token family')], default='step_up', help_text="Action when 'Data-volume anomaly' fires.", max_length=10)),
                        ('new_device', models.CharField(choices=[('record', 'Record only'), ('step_up', 'Require step-up (MFA)'), ('revoke', 'Revoke the session and its token family')], default='record', help_text="Action when 'New device' fires.", max_length=10)),
                        ('new_country', models.CharField(choices=[('record', 'Record only'), ('step_up', 'Require step-up (MFA)'), ('revoke', 'Revoke the session and its token family')], default='record', help_text="Action when 'New country' fires.", max_length=10)),
                        ('attestation_failures', models.CharField(choices=[('record', 'Record only'), ('step_up', 'Require step-up (MFA)'), ('revoke', 'Revoke the session and its token family')], default='revoke', help_text="Action when 'Streak of failed attestations' fires.", max_length=10)),
                        ('integrity_downgrade', models.CharField(choices=[('record', 'Record only'), ('step_up', 'Require step-up (MFA)'), ('revoke', 'Revoke the session and its token family')], default='step_up', help_text="Action when 'Downgraded integrity verdict' fires.", max_length=10)),
                        ('accepts_usage_reports', models.BooleanField(default=False, help_text="This (confidential) client may report its users' data volume to POST /usage.")),
                        ('updated_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('client', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='risk_policy', to='clients.client')),
                    ],
                    options={
                        'verbose_name_plural': 'risk policies',
                        'db_table': 'sessions_risk_policy',
                    },
                ),
                migrations.CreateModel(
                    name='UsageBaseline',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('day', models.DateField(help_text='The day this baseline judges (its window ends the day before).')),
                        ('median_bytes', models.PositiveBigIntegerField(blank=True, help_text='Empty: not enough history.', null=True)),
                        ('history_days', models.PositiveSmallIntegerField(default=0)),
                        ('computed_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('user', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='usage_baseline', to=settings.AUTH_USER_MODEL)),
                    ],
                    options={
                        'db_table': 'sessions_usage_baseline',
                    },
                ),
                migrations.CreateModel(
                    name='UserRiskProfile',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('last_ip', models.GenericIPAddressField(blank=True, null=True)),
                        ('last_latitude', models.FloatField(blank=True, null=True)),
                        ('last_longitude', models.FloatField(blank=True, null=True)),
                        ('last_accuracy_km', models.FloatField(default=0)),
                        ('last_country', models.CharField(blank=True, max_length=2)),
                        ('last_city', models.CharField(blank=True, max_length=100)),
                        ('last_seen_at', models.DateTimeField(blank=True, null=True)),
                        ('countries', models.JSONField(blank=True, default=list, help_text='ISO 3166-1 codes seen for this user.')),
                        ('user', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='risk_profile', to=settings.AUTH_USER_MODEL)),
                    ],
                    options={
                        'db_table': 'sessions_user_risk_profile',
                    },
                ),
                migrations.CreateModel(
                    name='DailyUsage',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('day', models.DateField()),
                        ('bytes', models.PositiveBigIntegerField(default=0)),
                        ('anomaly_at', models.DateTimeField(blank=True, help_text='When this day was judged anomalous (once).', null=True)),
                        ('user', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='daily_usage', to=settings.AUTH_USER_MODEL)),
                    ],
                    options={
                        'db_table': 'sessions_daily_usage',
                        'constraints': [models.UniqueConstraint(fields=('user', 'day'), name='daily_usage_per_user_day')],
                    },
                ),
                migrations.CreateModel(
                    name='StepUpDemand',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('acr', models.CharField(max_length=100)),
                        ('reason', models.CharField(max_length=80)),
                        ('session_sid', models.CharField(blank=True, max_length=64)),
                        ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('cleared_at', models.DateTimeField(blank=True, null=True)),
                        ('cleared_by_sid', models.CharField(blank=True, max_length=64)),
                        ('client', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='step_up_demands', to='clients.client')),
                        ('user', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='step_up_demands', to=settings.AUTH_USER_MODEL)),
                    ],
                    options={
                        'db_table': 'sessions_step_up_demand',
                        'indexes': [models.Index(fields=['user', 'client', 'cleared_at'], name='sessions_st_user_id_4d33db_idx')],
                    },
                ),
                migrations.CreateModel(
                    name='UsageReport',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('report_id', models.CharField(blank=True, help_text="The reporter's id, for idempotent retries.", max_length=64)),
                        ('bytes', models.PositiveBigIntegerField()),
                        ('period_start', models.DateTimeField()),
                        ('period_end', models.DateTimeField()),
                        ('received_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('client', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='usage_reports', to='clients.client')),
                        ('session', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='usage_reports', to='device_sessions.devicesession')),
                        ('user', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='usage_reports', to=settings.AUTH_USER_MODEL)),
                    ],
                    options={
                        'db_table': 'sessions_usage_report',
                        'constraints': [models.UniqueConstraint(condition=models.Q(('report_id', ''), _negated=True), fields=('client', 'report_id'), name='usage_report_id_per_client')],
                    },
                ),
            ],
        ),
    ]
