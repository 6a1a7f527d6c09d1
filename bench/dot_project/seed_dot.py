"""Seed the django-oauth-toolkit baseline exactly like Vigil's: one public client (PKCE),
users, live refresh tokens (each with the access token it came with, as DOT requires, and
its own token family) and unused authorization codes, in bulk SQL.

Tokens are stored as DOT 3.4 does with ``COMPLIANT_BCP_RFC9700_TOKEN_STORAGE``: an empty
``token`` column and the SHA-256 checksum used for lookup. Codes are stored as DOT stores
them (plaintext). Run with bench/.venv-dot from bench/dot_project.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dot_project.settings")
import django  # noqa: E402

django.setup()

from django.db import connection, transaction  # noqa: E402
from oauth2_provider.models import Application  # noqa: E402

from seed_sql import REDIRECT_URI, SQL_CODE, SQL_REFRESH, SQL_VERIFIER, sql_s256, sql_sha256_hex  # noqa: E402

SCOPE = "read write"


def seed(sessions: int, codes: int) -> dict[str, object]:
    users = max(1, min(sessions, 100_000))
    app = Application.objects.create(
        client_id="bench-mobile",
        name="Bench mobile app",
        client_type=Application.CLIENT_PUBLIC,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris=REDIRECT_URI,
        skip_authorization=True,
        client_secret="",
        hash_client_secret=False,
    )
    timings: dict[str, float] = {}
    with transaction.atomic(), connection.cursor() as cur:
        start = time.monotonic()
        cur.execute(
            """
            INSERT INTO auth_user (password, is_superuser, username, first_name, last_name, email,
                is_staff, is_active, date_joined)
            SELECT '!bench', false, 'bench-user-' || g, '', '', 'bench-user-' || g || '@example.test',
                false, true, now()
            FROM generate_series(1, %s) AS g
            """,
            [users],
        )
        cur.execute("SELECT min(id) FROM auth_user WHERE username LIKE 'bench-user-%%'")
        first_user = cur.fetchone()[0]
        timings["users"] = time.monotonic() - start
        start = time.monotonic()
        cur.execute(
            f"""
            INSERT INTO oauth2_provider_accesstoken (id, token, token_checksum, expires, scope, application_id,
                user_id, created, updated, resource)
            SELECT g, '', {sql_sha256_hex("'bench-at-' || g")}, now() + interval '5 minutes', %s, %s,
                %s + (g %% %s), now(), now(), '[]'::jsonb
            FROM generate_series(1, %s) AS g
            """,
            [SCOPE, app.pk, first_user, users, sessions],
        )
        cur.execute(
            f"""
            INSERT INTO oauth2_provider_refreshtoken (id, token, token_checksum, access_token_id, application_id,
                user_id, created, updated, token_family, resource)
            SELECT g, '', {sql_sha256_hex(SQL_REFRESH)}, g, %s, %s + (g %% %s), now(), now(),
                gen_random_uuid(), '[]'::jsonb
            FROM generate_series(1, %s) AS g
            """,
            [app.pk, first_user, users, sessions],
        )
        for table in ("oauth2_provider_accesstoken", "oauth2_provider_refreshtoken"):
            cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
        timings["sessions"] = time.monotonic() - start
        start = time.monotonic()
        cur.execute(
            f"""
            INSERT INTO oauth2_provider_grant (code, expires, redirect_uri, scope, application_id, user_id,
                created, updated, code_challenge, code_challenge_method, nonce, claims, resource)
            SELECT {SQL_CODE}, now() + interval '3 hours', %s, %s, %s, %s + (g %% %s), now(), now(),
                {sql_s256(SQL_VERIFIER)}, 'S256', '', '', '[]'::jsonb
            FROM generate_series(1, %s) AS g
            """,
            [REDIRECT_URI, SCOPE, app.pk, first_user, users, codes],
        )
        timings["codes"] = time.monotonic() - start
    with connection.cursor() as cur:
        for table in ("auth_user", "oauth2_provider_accesstoken", "oauth2_provider_refreshtoken", "oauth2_provider_grant"):
            cur.execute(f"VACUUM (ANALYZE) {table}")  # as Vigil's seeding: no autovacuum during the windows
    return {
        "client_id": app.client_id,
        "redirect_uri": REDIRECT_URI,
        "scope": SCOPE,
        "users": users,
        "sessions": sessions,
        "codes": codes,
        "seed_seconds": timings,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, required=True)
    parser.add_argument("--codes", type=int, required=True)
    args = parser.parse_args()
    print(json.dumps(seed(args.sessions, args.codes)))


if __name__ == "__main__":
    sys.exit(main())
