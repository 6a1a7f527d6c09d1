"""State-only: the models moved between apps (docs/architecture.md); their tables stay as they
are (``Meta.db_table``), so no row moves. See tests/test_model_moves.py."""

import django.utils.timezone
from django.db import migrations, models

import clients.models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('idp', '0008_ssf_help_texts'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='Client',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('client_id', models.CharField(max_length=100, unique=True)),
                        ('name', models.CharField(max_length=200)),
                        ('client_type', models.CharField(choices=[('public', 'Public (mobile/native app, no secret)'), ('confidential', 'Confidential (server-side service)')], max_length=20)),
                        ('secret_hash', models.CharField(blank=True, help_text='HMAC-SHA256 of the client secret.', max_length=64)),
                        ('token_endpoint_auth_method', models.CharField(choices=[('none', 'none (public client + PKCE)'), ('client_secret_basic', 'client_secret_basic'), ('client_secret_post', 'client_secret_post'), ('private_key_jwt', 'private_key_jwt')], help_text="The client's registered (first) authentication method.", max_length=40)),
                        ('additional_auth_methods', models.JSONField(blank=True, default=list, help_text="Further methods the client may also use, e.g. client_secret_post beside client_secret_basic (the same secret). Never 'none' for a confidential client.")),
                        ('jwks', models.JSONField(blank=True, default=dict, help_text='Public keys for private_key_jwt.')),
                        ('redirect_uris', models.JSONField(blank=True, default=list)),
                        ('post_logout_redirect_uris', models.JSONField(blank=True, default=list)),
                        ('allowed_scopes', models.JSONField(default=list, help_text='Scopes this client may ever receive.')),
                        ('grant_types', models.JSONField(default=list)),
                        ('allowed_audiences', models.JSONField(blank=True, default=list, help_text='Resource indicators (RFC 8707) this client may request.')),
                        ('served_resources', models.JSONField(blank=True, default=list, help_text="Resources this client serves as a resource server (RFC 8707 URIs, or a client_id: the aud of that client's tokens without a resource): it may introspect access tokens whose aud names one (RFC 7662 §4).")),
                        ('first_party', models.BooleanField(default=False, help_text='Skip the consent screen.')),
                        ('require_pkce', models.BooleanField(default=True, help_text='Always on for public clients. Off only for a confidential OpenID client that sends a nonce with scope openid instead (RFC 9700 §2.1.1), and only takes effect with IDP_REQUIRE_PKCE_FOR_ALL_CLIENTS off.')),
                        ('require_mfa', models.BooleanField(default=False)),
                        ('require_dpop', models.BooleanField(default=False, help_text='Refuse token requests without a DPoP proof (RFC 9449); refresh tokens of public clients are DPoP-bound whenever a proof is sent.')),
                        ('signing_alg', models.CharField(choices=[('ES256', 'ES256'), ('RS256', 'RS256'), ('EdDSA', 'EdDSA')], default=clients.models.default_signing_alg, help_text="JWS algorithm of this client's ID and access tokens.", max_length=10)),
                        ('access_token_lifetime', models.PositiveIntegerField(blank=True, help_text='Seconds; default 300.', null=True)),
                        ('refresh_token_lifetime', models.PositiveIntegerField(blank=True, null=True)),
                        ('is_active', models.BooleanField(default=True)),
                        ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                    ],
                    options={
                        'db_table': 'idp_client',
                    },
                ),
            ],
        ),
    ]
