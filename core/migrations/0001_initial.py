"""State-only: the models moved between apps (docs/architecture.md); their tables stay as they
are (``Meta.db_table``), so no row moves. See tests/test_model_moves.py."""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('idp', '0008_ssf_help_texts'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='SigningKey',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('kid', models.CharField(max_length=64, unique=True)),
                        ('alg', models.CharField(max_length=10)),
                        ('status', models.CharField(choices=[('next', 'Published, not yet signing'), ('active', 'Signing'), ('retiring', 'Published for verification only'), ('retired', 'Removed from the JWKS')], db_index=True, max_length=10)),
                        ('public_jwk', models.JSONField()),
                        ('private_key_encrypted', models.TextField(help_text='Fernet-encrypted private JWK.')),
                        ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('activates_at', models.DateTimeField(help_text='When it starts signing.')),
                        ('retired_at', models.DateTimeField(blank=True, help_text='When it stopped signing.', null=True)),
                        ('remove_after', models.DateTimeField(blank=True, help_text='Dropped from the JWKS after this (every token it signed has expired).', null=True)),
                    ],
                    options={
                        'db_table': 'idp_signing_key',
                        'ordering': ['-created_at'],
                        'constraints': [models.UniqueConstraint(condition=models.Q(('status', 'active')), fields=('alg',), name='idp_one_active_key_per_alg')],
                    },
                ),
                migrations.CreateModel(
                    name='SecurityEvent',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('created_at', models.DateTimeField(db_index=True, default=django.utils.timezone.now)),
                        ('event_type', models.CharField(db_index=True, max_length=80)),
                        ('outcome', models.CharField(db_index=True, help_text='success, failure, denied, info', max_length=20)),
                        ('reason', models.CharField(blank=True, db_index=True, max_length=80)),
                        ('client_id', models.CharField(blank=True, db_index=True, max_length=100)),
                        ('session_id', models.CharField(blank=True, db_index=True, max_length=64)),
                        ('ip_address', models.GenericIPAddressField(blank=True, null=True)),
                        ('details', models.JSONField(blank=True, default=dict)),
                        ('user', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, to=settings.AUTH_USER_MODEL)),
                    ],
                    options={
                        'db_table': 'idp_security_event',
                        'ordering': ['-created_at'],
                        'indexes': [models.Index(fields=['session_id', 'id'], name='idp_secevent_session_id')],
                    },
                ),
            ],
        ),
    ]
