"""State-only: the models moved between apps (docs/architecture.md); their tables stay as they
are (``Meta.db_table``), so no row moves. See tests/test_model_moves.py."""

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('attestation', '0004_delete_challenge'),
        ('clients', '0001_initial'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='DeviceHealth',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('platform', models.CharField(choices=[('ios', 'iOS (App Attest)'), ('android', 'Android (Key Attestation / Play Integrity)')], db_index=True, max_length=10)),
                        ('os_version', models.CharField(blank=True, db_index=True, max_length=40)),
                        ('outcome', models.CharField(choices=[('allow', 'Allow'), ('reduce', 'Allow with reduced scopes and a shorter access-token lifetime'), ('step_up', 'Require step-up (the user authorizes again)'), ('deny', 'Deny')], db_index=True, default='allow', max_length=10)),
                        ('deciding_rule', models.CharField(blank=True, max_length=60)),
                        ('deciding_condition', models.CharField(blank=True, choices=[('boot_not_verified', 'Verified boot state is not Verified (Key Attestation)'), ('bootloader_unlocked', 'Bootloader unlocked (Key Attestation)'), ('integrity_below', 'Device recognition below a level (Play Integrity; parameter strong|device|basic)'), ('app_not_recognized', 'App not recognised as genuine (Play Integrity / App Attest)'), ('patch_older_than', 'OS patch level older than N months (Key Attestation; parameter N)'), ('os_version_below', 'OS version below a version (parameter e.g. 17.0)'), ('screen_captured', 'Screen captured or mirrored (self-reported)'), ('debugger_attached', 'Debugger attached (self-reported)'), ('app_access_risk', 'Risky apps detected (Play Integrity appsDetected; parameter: list)'), ('play_protect_risk', 'Play Protect verdict (parameter: list of verdicts)'), ('device_activity_above', 'Recent device activity above a level (parameter LEVEL_1..4)'), ('receipt_risk_above', 'App Attest receipt risk metric above N (parameter N)')], max_length=30)),
                        ('allowed_scopes', models.CharField(blank=True, help_text='None: not restricted.', max_length=500, null=True)),
                        ('access_token_lifetime', models.PositiveIntegerField(blank=True, null=True)),
                        ('findings', models.JSONField(blank=True, default=list, help_text='Every rule that fired, in order.')),
                        ('facts', models.JSONField(blank=True, default=dict, help_text='name -> {value, source, trust}.')),
                        ('signals', models.JSONField(blank=True, default=dict, help_text='Self-reported signals of the last attestation.')),
                        ('receipt_risk_metric', models.IntegerField(blank=True, null=True)),
                        ('receipt_checked_at', models.DateTimeField(blank=True, null=True)),
                        ('evaluated_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('outcome_changed_at', models.DateTimeField(blank=True, null=True)),
                        ('device', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='health', to='attestation.device')),
                    ],
                    options={
                        'verbose_name_plural': 'device health',
                        'db_table': 'attestation_device_health',
                    },
                ),
                migrations.CreateModel(
                    name='HealthFinding',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('rule', models.CharField(db_index=True, max_length=60)),
                        ('condition', models.CharField(choices=[('boot_not_verified', 'Verified boot state is not Verified (Key Attestation)'), ('bootloader_unlocked', 'Bootloader unlocked (Key Attestation)'), ('integrity_below', 'Device recognition below a level (Play Integrity; parameter strong|device|basic)'), ('app_not_recognized', 'App not recognised as genuine (Play Integrity / App Attest)'), ('patch_older_than', 'OS patch level older than N months (Key Attestation; parameter N)'), ('os_version_below', 'OS version below a version (parameter e.g. 17.0)'), ('screen_captured', 'Screen captured or mirrored (self-reported)'), ('debugger_attached', 'Debugger attached (self-reported)'), ('app_access_risk', 'Risky apps detected (Play Integrity appsDetected; parameter: list)'), ('play_protect_risk', 'Play Protect verdict (parameter: list of verdicts)'), ('device_activity_above', 'Recent device activity above a level (parameter LEVEL_1..4)'), ('receipt_risk_above', 'App Attest receipt risk metric above N (parameter N)')], max_length=30)),
                        ('outcome', models.CharField(choices=[('allow', 'Allow'), ('reduce', 'Allow with reduced scopes and a shorter access-token lifetime'), ('step_up', 'Require step-up (the user authorizes again)'), ('deny', 'Deny')], max_length=10)),
                        ('platform', models.CharField(choices=[('ios', 'iOS (App Attest)'), ('android', 'Android (Key Attestation / Play Integrity)')], db_index=True, max_length=10)),
                        ('os_version', models.CharField(blank=True, db_index=True, max_length=40)),
                        ('detail', models.CharField(blank=True, max_length=200)),
                        ('health', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='finding_rows', to='device_health.devicehealth')),
                    ],
                    options={
                        'db_table': 'attestation_health_finding',
                    },
                ),
                migrations.CreateModel(
                    name='HealthPolicy',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('include_default_rules', models.BooleanField(default=True, help_text="Also apply the built-in secure defaults after this policy's own rules.")),
                        ('reduced_scopes', models.CharField(blank=True, help_text="Scopes kept by a 'reduce' rule without its own; empty: the setting.", max_length=500)),
                        ('reduced_lifetime', models.PositiveIntegerField(blank=True, help_text="Access-token seconds for a 'reduce' rule without its own.", null=True)),
                        ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('updated_at', models.DateTimeField(auto_now=True)),
                        ('client', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='health_policy', to='clients.client')),
                    ],
                    options={
                        'verbose_name_plural': 'health policies',
                        'db_table': 'attestation_health_policy',
                    },
                ),
                migrations.CreateModel(
                    name='HealthRule',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('order', models.PositiveSmallIntegerField(default=0)),
                        ('name', models.SlugField(help_text='Stable name, shown to admins and in events.', max_length=60)),
                        ('enabled', models.BooleanField(default=True)),
                        ('platform', models.CharField(blank=True, choices=[('ios', 'iOS (App Attest)'), ('android', 'Android (Key Attestation / Play Integrity)')], max_length=10)),
                        ('condition', models.CharField(choices=[('boot_not_verified', 'Verified boot state is not Verified (Key Attestation)'), ('bootloader_unlocked', 'Bootloader unlocked (Key Attestation)'), ('integrity_below', 'Device recognition below a level (Play Integrity; parameter strong|device|basic)'), ('app_not_recognized', 'App not recognised as genuine (Play Integrity / App Attest)'), ('patch_older_than', 'OS patch level older than N months (Key Attestation; parameter N)'), ('os_version_below', 'OS version below a version (parameter e.g. 17.0)'), ('screen_captured', 'Screen captured or mirrored (self-reported)'), ('debugger_attached', 'Debugger attached (self-reported)'), ('app_access_risk', 'Risky apps detected (Play Integrity appsDetected; parameter: list)'), ('play_protect_risk', 'Play Protect verdict (parameter: list of verdicts)'), ('device_activity_above', 'Recent device activity above a level (parameter LEVEL_1..4)'), ('receipt_risk_above', 'App Attest receipt risk metric above N (parameter N)')], max_length=30)),
                        ('parameter', models.CharField(blank=True, max_length=200)),
                        ('outcome', models.CharField(choices=[('allow', 'Allow'), ('reduce', 'Allow with reduced scopes and a shorter access-token lifetime'), ('step_up', 'Require step-up (the user authorizes again)'), ('deny', 'Deny')], max_length=10)),
                        ('scopes', models.CharField(blank=True, help_text="'reduce': the scopes kept (space-separated).", max_length=500)),
                        ('access_token_lifetime', models.PositiveIntegerField(blank=True, help_text="'reduce': seconds.", null=True)),
                        ('user_message', models.CharField(blank=True, help_text='What the user should do.', max_length=300)),
                        ('policy', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='rules', to='device_health.healthpolicy')),
                    ],
                    options={
                        'db_table': 'attestation_health_rule',
                        'ordering': ['policy', 'order', 'pk'],
                        'constraints': [models.UniqueConstraint(fields=('policy', 'name'), name='attestation_health_rule_name')],
                    },
                ),
            ],
        ),
    ]
