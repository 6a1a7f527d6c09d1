"""State-only: the models moved between apps (docs/architecture.md); their tables stay as they
are (``Meta.db_table``), so no row moves. See tests/test_model_moves.py."""

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models

import shared_signals.models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('idp', '0008_ssf_help_texts'),
        ('clients', '0001_initial'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='SsfReceiver',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('name', models.CharField(max_length=200)),
                        ('audience', models.CharField(help_text="The SETs' “aud” claim: identifies this receiver.", max_length=255)),
                        ('endpoint_url', models.URLField(help_text='Where SETs are POSTed (application/secevent+jwt).', max_length=500)),
                        ('events_requested', models.JSONField(default=shared_signals.models._all_events, help_text='CAEP event type URIs this receiver wants.', validators=[shared_signals.models._validate_event_types])),
                        ('authorization_header_encrypted', models.TextField(blank=True, help_text='Authorization header value sent with every push (encrypted at rest).')),
                        ('enabled', models.BooleanField(default=True)),
                        ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('client', models.ForeignKey(blank=True, help_text="When set, only events about this client's sessions, users and devices are sent.", null=True, on_delete=django.db.models.deletion.CASCADE, related_name='ssf_receivers', to='clients.client')),
                    ],
                    options={
                        'db_table': 'idp_ssf_receiver',
                    },
                ),
                migrations.CreateModel(
                    name='SsfTransmitter',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('slug', models.CharField(default=shared_signals.models._generate_slug, help_text='Public id in the push URL /ssf/receive/<slug>.', max_length=40, unique=True)),
                        ('name', models.CharField(max_length=200)),
                        ('issuer', models.CharField(help_text='Expected “iss” claim of its SETs.', max_length=255)),
                        ('jwks_uri', models.URLField(blank=True, help_text='Fetched with a short cache.', max_length=500)),
                        ('jwks', models.JSONField(blank=True, default=dict, help_text='Static JWKS (used instead of jwks_uri).')),
                        ('audience', models.CharField(help_text='The “aud” claim its SETs must carry for us.', max_length=255)),
                        ('allowed_algs', models.JSONField(default=shared_signals.models.default_algs, help_text='Accepted JWS algorithms (never none/HS*).')),
                        ('policy', models.JSONField(default=shared_signals.models.default_policy, help_text='Event type URI -> action.')),
                        ('trust_email', models.BooleanField(default=False, help_text='Accept “email” subjects (verified emails only).')),
                        ('authorization_header_hash', models.CharField(blank=True, help_text='Keyed hash of the Authorization header it must send (optional).', max_length=64)),
                        ('enabled', models.BooleanField(default=True)),
                        ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('client', models.ForeignKey(blank=True, help_text="When set, its events only act on this client's sessions and devices.", null=True, on_delete=django.db.models.deletion.CASCADE, related_name='ssf_transmitters', to='clients.client')),
                    ],
                    options={
                        'db_table': 'idp_ssf_transmitter',
                    },
                ),
                migrations.CreateModel(
                    name='SetDelivery',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('jti', models.CharField(max_length=64, unique=True)),
                        ('event_type', models.CharField(db_index=True, max_length=200)),
                        ('claims', models.JSONField()),
                        ('status', models.CharField(choices=[('pending', 'Pending'), ('delivered', 'Delivered (202)'), ('failed', 'Failed (retries exhausted; the sweep tries again)'), ('rejected', 'Rejected by the receiver (4xx; not retried)')], default='pending', max_length=10)),
                        ('attempts', models.PositiveIntegerField(default=0)),
                        ('last_error', models.CharField(blank=True, max_length=500)),
                        ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('last_attempt_at', models.DateTimeField(blank=True, null=True)),
                        ('delivered_at', models.DateTimeField(blank=True, null=True)),
                        ('receiver', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='deliveries', to='shared_signals.ssfreceiver')),
                    ],
                    options={
                        'db_table': 'idp_ssf_delivery',
                        'ordering': ['-created_at'],
                        'indexes': [models.Index(fields=['status', 'created_at'], name='idp_ssf_del_status_bf061c_idx')],
                    },
                ),
                migrations.CreateModel(
                    name='ReceivedSet',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('jti', models.CharField(max_length=255)),
                        ('event_types', models.JSONField(default=list)),
                        ('issued_at', models.DateTimeField()),
                        ('received_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('actions', models.JSONField(blank=True, default=list, help_text='What each event did here.')),
                        ('transmitter', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='received', to='shared_signals.ssftransmitter')),
                    ],
                    options={
                        'db_table': 'idp_ssf_received_set',
                        'ordering': ['-received_at'],
                        'constraints': [models.UniqueConstraint(fields=('transmitter', 'jti'), name='idp_ssf_received_unique_jti')],
                    },
                ),
            ],
        ),
    ]
