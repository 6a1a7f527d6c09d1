"""Time ``/jwks.json``, ``/.well-known/openid-configuration`` and the introspection of a JWT
access token in process (Django's test client: no gunicorn, no network): wall and CPU
milliseconds per request and SQL statements per warm request, for before/after checks on
issue 19. Production settings (``bench.bench_settings``), on the database and Redis given:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/SCRATCH REDIS_URL=redis://127.0.0.1:6379/N \\
        .venv/bin/python -m bench.time_documents [--requests 2000]

It migrates that database and adds two clients, a user and an access token to it: use a
scratch database of your own.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _environment() -> None:
    for var in ("DATABASE_URL", "REDIS_URL"):
        if var not in os.environ:
            sys.exit(f"set {var} (a scratch database and Redis index of your own)")
    os.environ.update({
        "DJANGO_SETTINGS_MODULE": "bench.bench_settings",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "IDP_KEY_ENCRYPTION_SECRET": os.environ.get("IDP_KEY_ENCRYPTION_SECRET", secrets.token_urlsafe(32)),
        "IDP_ISSUER": "https://localhost",
        "DJANGO_BEHIND_TLS_PROXY": "1",
    })
    for var in ("DJANGO_DEBUG", "VIGIL_TESTING"):
        os.environ.pop(var, None)
    sys.path.insert(0, str(ROOT))


def _introspection(client: Any) -> Callable[[], Any]:
    """A confidential resource server introspecting one of the app's JWT access tokens."""
    import base64

    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from clients.flows.registration import register_client
    from core import keys
    from sessions.flows.tokens import issue_access_token

    keys.ensure_keys()
    tag = secrets.token_hex(4)
    app = register_client(name=f"Timed app {tag}", public=True, redirect_uris=["com.example.app:/cb"],
                          scopes=["openid", "profile"], client_id=f"timed-app-{tag}").client
    service = register_client(name=f"Timed RS {tag}", public=False, redirect_uris=[],
                              grant_types=["client_credentials"], scopes=["profile"], served_resources=[app.client_id])
    user = get_user_model().objects.create_user(username=f"timed-{tag}", password=None)
    token, _, _ = issue_access_token(client=app, user=user, scope="openid profile", audience=[app.client_id],
                                     session=None, now=timezone.now(), lifetime=3600)
    basic = base64.b64encode(f"{service.client.client_id}:{service.secret}".encode()).decode()

    def one() -> Any:
        return client.post("/introspect", f"token={token}&token_type_hint=access_token",
                           content_type="application/x-www-form-urlencoded", HTTP_AUTHORIZATION=f"Basic {basic}")

    return one


def _timed(name: str, one: Callable[[], Any], requests: int) -> None:
    from django.db import connection

    for _ in range(20):
        assert one().status_code == 200
    statements: list[str] = []

    def keep(execute, sql, params, many, context):  # type: ignore[no-untyped-def]
        statements.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(keep):
        one()
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(requests):
        one()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"{name:<24} {1000 * wall / requests:6.3f} ms wall  {1000 * cpu / requests:6.3f} ms CPU  "
          f"{requests / wall:8.0f} req/s  {len(statements)} SQL")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    _environment()
    import logging

    import django

    django.setup()
    logging.getLogger("vigil.security").handlers = [logging.NullHandler()]
    from django.core.management import call_command
    from django.test import Client

    call_command("migrate", verbosity=0)
    client = Client(HTTP_HOST="localhost", HTTP_X_FORWARDED_PROTO="https")
    _timed("jwks", lambda: client.get("/jwks.json"), args.requests)
    _timed("openid-configuration", lambda: client.get("/.well-known/openid-configuration"), args.requests)
    _timed("introspection (JWT)", _introspection(client), args.requests)


if __name__ == "__main__":
    main()
