"""State-only: the models moved between apps (docs/architecture.md); their tables stay as they
are (``Meta.db_table``), so no row moves. See tests/test_model_moves.py."""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('idp', '0008_ssf_help_texts'),
        ('clients', '0001_initial'),
        ('device_sessions', '0005_devicesession_last_place'),
        ('risk', '0001_initial'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveField(
                    model_name='deviceriskstate',
                    name='device',
                ),
                migrations.RemoveField(
                    model_name='riskpolicy',
                    name='client',
                ),
                migrations.RemoveField(
                    model_name='stepupdemand',
                    name='client',
                ),
                migrations.RemoveField(
                    model_name='stepupdemand',
                    name='user',
                ),
                migrations.RemoveField(
                    model_name='usagebaseline',
                    name='user',
                ),
                migrations.RemoveField(
                    model_name='usagereport',
                    name='client',
                ),
                migrations.RemoveField(
                    model_name='usagereport',
                    name='session',
                ),
                migrations.RemoveField(
                    model_name='usagereport',
                    name='user',
                ),
                migrations.RemoveField(
                    model_name='userriskprofile',
                    name='user',
                ),
                migrations.AlterField(
                    model_name='accesstoken',
                    name='client',
                    field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, to='clients.client'),
                ),
                migrations.AlterField(
                    model_name='devicesession',
                    name='client',
                    field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='device_sessions', to='clients.client'),
                ),
                migrations.CreateModel(
                    name='AuthorizationCode',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('code_hash', models.CharField(max_length=64, unique=True)),
                        ('redirect_uri', models.TextField()),
                        ('scope', models.TextField(blank=True)),
                        ('resource', models.JSONField(blank=True, default=list)),
                        ('nonce', models.CharField(blank=True, max_length=512)),
                        ('code_challenge', models.CharField(blank=True, max_length=128)),
                        ('code_challenge_method', models.CharField(blank=True, max_length=10)),
                        ('auth_time', models.DateTimeField()),
                        ('amr', models.JSONField(default=list)),
                        ('acr', models.CharField(blank=True, max_length=100)),
                        ('browser_sid', models.CharField(blank=True, help_text="The login session's sid.", max_length=64)),
                        ('dpop_jkt', models.CharField(blank=True, default='', help_text='RFC 9449 §10: the exchange must carry a DPoP proof of the key with this JWK thumbprint.', max_length=64)),
                        ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('expires_at', models.DateTimeField()),
                        ('used_at', models.DateTimeField(blank=True, null=True)),
                        ('client', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, to='clients.client')),
                        ('user', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, to=settings.AUTH_USER_MODEL)),
                    ],
                    options={
                        'db_table': 'idp_authorization_code',
                    },
                ),
                migrations.AlterField(
                    model_name='devicesession',
                    name='authorization_code',
                    field=models.OneToOneField(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='device_session', to='device_sessions.authorizationcode'),
                ),
                migrations.DeleteModel(
                    name='DailyUsage',
                ),
                migrations.DeleteModel(
                    name='DeviceRiskState',
                ),
                migrations.DeleteModel(
                    name='RiskPolicy',
                ),
                migrations.DeleteModel(
                    name='StepUpDemand',
                ),
                migrations.DeleteModel(
                    name='UsageBaseline',
                ),
                migrations.DeleteModel(
                    name='UsageReport',
                ),
                migrations.DeleteModel(
                    name='UserRiskProfile',
                ),
            ],
        ),
    ]
