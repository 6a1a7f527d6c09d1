"""/healthz and /readyz (docs/operations.md "Health checks"): cheap, unthrottled, answered
whatever the Host header and before the HTTPS redirect; /readyz fails with the reason for
each dependency: the database, the shared cache, a usable signing key."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client as HttpClient

from core import keys
from core.models import SecurityEvent
from core.outage_testing import cache_down, database_down

pytestmark = pytest.mark.django_db


@pytest.fixture
def http() -> HttpClient:
    return HttpClient(raise_request_exception=False)


def test_healthz_touches_no_database(http: HttpClient, django_assert_num_queries: Any) -> None:
    with django_assert_num_queries(0), database_down():
        response = http.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response["Cache-Control"] == "no-store"


def test_probes_answer_a_kubelet_over_plain_http_to_the_pod_address(http: HttpClient, settings: Any) -> None:
    """The pod's IP is no allowed host and the probe is plain HTTP: still 200, no redirect."""
    settings.SECURE_SSL_REDIRECT = True
    settings.ALLOWED_HOSTS = ["login.example.com"]
    for path in ("/healthz", "/readyz"):
        response = http.get(path, HTTP_HOST="10.1.2.3:8000")
        assert response.status_code == 200, (path, response.content)
    assert http.get("/.well-known/openid-configuration", HTTP_HOST="10.1.2.3:8000").status_code == 400


def test_readyz_ready(http: HttpClient) -> None:
    response = http.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"database": "ok", "cache": "ok", "signing_key": "ok"}}


def test_probes_refuse_writes(http: HttpClient) -> None:
    assert http.post("/healthz").status_code == 405
    assert http.post("/readyz")["Allow"] == "GET, HEAD"


def test_readyz_database_down(http: HttpClient) -> None:
    with database_down():
        response = http.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not_ready"
    assert body["reason"] == "database: unavailable (OperationalError)"
    assert body["checks"]["cache"] == "ok"
    assert body["checks"]["signing_key"] == "not checked (database unavailable)"


@pytest.mark.redis  # a real redis-py client meeting a refused connection
def test_readyz_cache_down(http: HttpClient, settings: Any) -> None:
    with cache_down(settings):
        response = http.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["reason"] == "cache: unavailable (ConnectionError)"
    assert body["checks"]["database"] == "ok" and body["checks"]["signing_key"] == "ok"
    assert "127.0.0.1" not in response.content.decode()  # the error's message (an address) is not shown


def test_readyz_without_a_usable_signing_key(http: HttpClient, settings: Any) -> None:
    """Keys encrypted under a secret this instance does not have (a deploy with the wrong
    IDP_KEY_ENCRYPTION_SECRET): not ready, and nothing changed."""
    keys.ensure_keys()
    before = list(keys.SigningKey.objects.values_list("kid", "status"))
    settings.IDP_KEY_ENCRYPTION_SECRET = "another-secret-entirely"
    settings.IDP_KEY_ENCRYPTION_SECRET_FALLBACKS = []
    keys._private_cache.clear()
    response = http.get("/readyz")
    assert response.status_code == 503
    assert response.json()["reason"] == "signing_key: unavailable (DecryptionError)"
    assert list(keys.SigningKey.objects.values_list("kid", "status")) == before
    assert not SecurityEvent.objects.exists()


def test_readyz_on_a_fresh_database_makes_the_first_keys(http: HttpClient) -> None:
    assert not keys.SigningKey.objects.exists()
    assert http.get("/readyz").status_code == 200
    assert set(keys.SigningKey.objects.values_list("alg", flat=True)) == set(keys.signing_algs())


def test_observability_can_be_turned_off_to_measure_its_cost() -> None:
    """``VIGIL_OBSERVABILITY=0`` (the bench's "before"): no middleware, no event counting."""
    import subprocess
    import sys
    from pathlib import Path

    script = ("import django; django.setup(); from django.conf import settings; from core import events; "
              "print(any('ops.' in m for m in settings.MIDDLEWARE), len(events._listeners))")
    root = Path(__file__).resolve().parents[2]
    for value, expected in (("0", "False 0"), ("1", "True 1")):
        env = {"PATH": "/usr/bin:/bin", "VIGIL_TESTING": "1", "DJANGO_SETTINGS_MODULE": "vigil.settings",
               "VIGIL_OBSERVABILITY": value, "VIGIL_VAR_DIR": "/tmp"}
        out = subprocess.run([sys.executable, "-c", script], env=env, cwd=root, capture_output=True, text=True,
                             timeout=60)
        assert out.stdout.strip() == expected, out.stderr
