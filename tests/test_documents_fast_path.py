"""/jwks.json and discovery answered before Django's handler (vigil/documents_fast_path.py):
exactly Django's answer (body and headers), no SQL, Django's own host and HTTPS checks, and
never a stale key set: a key changed anywhere, a scheduled transition or a cache outage sends
the request back to Django."""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Iterable, Iterator
from typing import Any

import pytest
import time_machine
from django.core.cache import cache, caches
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.test import RequestFactory
from prometheus_client import REGISTRY
from redis.connection import AbstractConnection

from core import config_cache, keys, sql
from core.cache import RedisCache
from core.models import KeyStatus, SigningKey
from tests.cache_outage import redis_unreachable
from vigil.documents_fast_path import DocumentsFastPath

pytestmark = pytest.mark.django_db

JWKS = "/jwks.json"
DISCOVERY = "/.well-known/openid-configuration"


class Answer:
    def __init__(self, status: str, headers: list[tuple[str, str]], body: bytes):
        self.status, self.body = status, body
        self.headers = dict(headers)

    def without_request_id(self) -> dict[str, str]:
        return {k: v for k, v in self.headers.items() if k != "X-Request-ID"}


class Counted:
    """Django's WSGI handler, counting the requests that reach it."""

    def __init__(self) -> None:
        self.django: WSGIHandler | None = None
        self.calls = 0

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        self.calls += 1
        if self.django is None:  # built at the first request, under the test's settings
            self.django = WSGIHandler()
        return self.django(environ, start_response)


@pytest.fixture
def django_app() -> Iterator[Counted]:
    """As Django's test client does: the handler's signals must not close the test's
    connection (it holds the test transaction)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield Counted()
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.fixture
def app(django_app: Counted) -> DocumentsFastPath:
    keys.ensure_keys()
    config_cache.clear_local()
    return DocumentsFastPath(django_app)


def call(app: Any, path: str = JWKS, method: str = "GET", secure: bool = False, **extra: Any) -> Answer:
    environ = RequestFactory().generic(method, path, secure=secure, **extra).environ
    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        seen.update(status=status, headers=headers)

    result = app(environ, start_response)
    body = b"".join(result)
    getattr(result, "close", lambda: None)()
    return Answer(seen["status"], seen["headers"], body)


def _key_written_elsewhere() -> SigningKey:
    """A key row inserted without this process's signals, then the generation another process's
    commit publishes (as in idp/tests/test_documents_from_memory.py)."""
    private = keys.generate_private_key("ES256")
    public = {**private.as_dict(private=False), "kid": private.thumbprint(), "alg": "ES256", "use": "sig"}
    row = SigningKey(kid=private.thumbprint(), alg="ES256", status=KeyStatus.NEXT, public_jwk=public,
                     private_key_encrypted="-", activates_at=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
    sql.insert([row])
    cache.set(config_cache.GENERATION_KEY, os.urandom(8).hex(), timeout=None)
    return row


@pytest.mark.parametrize("path", [JWKS, DISCOVERY, "/.well-known/oauth-authorization-server"])
@pytest.mark.parametrize("secure", [False, True])
def test_the_second_get_is_djangos_answer_without_django(
    app: DocumentsFastPath, django_app: Counted, path: str, secure: bool, settings: Any,
    django_assert_num_queries: Any,
) -> None:
    settings.SECURE_HSTS_SECONDS = 600  # a header only HTTPS answers carry: learned per scheme
    first = call(app, path, secure=secure)
    call(app, path, secure=secure)  # the same answer twice: learned
    with django_assert_num_queries(0):
        second = call(app, path, secure=secure)
    assert django_app.calls == 2
    assert (first.status, second.status) == ("200 OK", "200 OK")
    assert second.body == first.body
    assert second.without_request_id() == first.without_request_id()
    assert ("Strict-Transport-Security" in second.headers) is secure
    assert second.headers["X-Content-Type-Options"] == "nosniff"
    assert second.headers["Content-Length"] == str(len(second.body))
    assert len({first.headers["X-Request-ID"], second.headers["X-Request-ID"]}) == 2


def test_a_key_changed_on_another_process_is_served_at_the_next_request(
    app: DocumentsFastPath, django_app: Counted,
) -> None:
    call(app)
    call(app)
    before = call(app)
    assert django_app.calls == 2
    added = _key_written_elsewhere()
    after = call(app)
    assert django_app.calls == 3
    assert added.kid in after.body.decode() and added.kid not in before.body.decode()
    call(app)
    assert call(app).body == after.body and django_app.calls == 4  # fast again, with the new set


def test_a_scheduled_transition_is_not_served_late(app: DocumentsFastPath, django_app: Counted) -> None:
    now = dt.datetime.now(dt.UTC)
    keys.create_key("ES256", status=KeyStatus.NEXT, activates_at=now + dt.timedelta(minutes=5))
    for _ in range(3):
        call(app)
    assert django_app.calls == 2
    with time_machine.travel(now + dt.timedelta(minutes=6), tick=False):
        call(app)
    assert django_app.calls == 3


def test_a_refused_host_is_refused_by_django(app: DocumentsFastPath, django_app: Counted, settings: Any) -> None:
    settings.ALLOWED_HOSTS = ["idp.example"]
    for _ in range(3):
        call(app, HTTP_HOST="idp.example")
    assert django_app.calls == 2
    refused = call(app, HTTP_HOST="evil.example")
    assert refused.status.startswith("400") and django_app.calls == 3
    assert b'"keys"' not in refused.body


def test_plain_http_is_redirected_by_django(app: DocumentsFastPath, django_app: Counted, settings: Any) -> None:
    settings.SECURE_SSL_REDIRECT = True
    for _ in range(3):
        call(app, secure=True)
    assert django_app.calls == 2
    plain = call(app)
    assert plain.status.startswith("301") and plain.headers["Location"].startswith("https://")
    assert django_app.calls == 3


@pytest.mark.parametrize(("method", "path", "status"), [
    ("POST", JWKS, "405"), ("HEAD", JWKS, "405"), ("GET", JWKS + "?x=1", "200"), ("GET", "/jwks.json/", "404"),
])
def test_anything_else_is_djangos(
    app: DocumentsFastPath, django_app: Counted, method: str, path: str, status: str,
) -> None:
    for _ in range(3):
        call(app)
    assert django_app.calls == 2
    answer = call(app, path, method=method)
    assert answer.status.startswith(status)
    assert django_app.calls == 3


def test_a_cache_outage_goes_to_django_which_reads_the_database(app: DocumentsFastPath, django_app: Counted) -> None:
    call(app)
    warm = call(app)
    assert call(app).body == warm.body and django_app.calls == 2  # learned: fast
    with redis_unreachable():  # no setting changes: only the failed generation read sends it to Django
        for n in range(2):
            during = call(app)
            assert during.status == "200 OK" and during.body == warm.body
            assert django_app.calls == 3 + n


def test_a_fast_answer_is_counted_and_logged(
    app: DocumentsFastPath, caplog: pytest.LogCaptureFixture,
) -> None:
    call(app)
    call(app)
    labels = {"endpoint": "jwks", "method": "GET", "status": "200"}
    before = REGISTRY.get_sample_value("vigil_http_requests_total", labels) or 0
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="vigil.request"):
        answer = call(app)
    assert REGISTRY.get_sample_value("vigil_http_requests_total", labels) == before + 1
    lines = [r.event for r in caplog.records if r.name == "vigil.request"]  # type: ignore[attr-defined]
    assert [(line["endpoint"], line["status"], line["request_id"]) for line in lines] == [
        ("jwks", 200, answer.headers["X-Request-ID"])
    ]


def test_without_observability_no_request_id(app: DocumentsFastPath, settings: Any) -> None:
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if m != "ops.middleware.ObservabilityMiddleware"]
    call(app)
    call(app)
    answer = call(app)
    assert answer.status == "200 OK" and "X-Request-ID" not in answer.headers


class PerAnswerHeader:
    """A middleware whose header differs on every answer (as the bench's query count does)."""

    served = 0

    def __init__(self, get_response: Any):
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        response = self.get_response(request)
        PerAnswerHeader.served += 1
        response["X-Per-Answer"] = str(PerAnswerHeader.served)
        return response


def test_a_header_that_changes_between_answers_is_never_replayed(
    app: DocumentsFastPath, django_app: Counted, settings: Any,
) -> None:
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "tests.test_documents_fast_path.PerAnswerHeader"]
    answers = [call(app) for _ in range(4)]
    assert django_app.calls == 4  # never learned: every answer is Django's own
    assert len({a.headers["X-Per-Answer"] for a in answers}) == 4


@pytest.mark.redis
def test_each_fast_answer_reads_the_generation_from_redis_once(
    app: DocumentsFastPath, django_app: Counted, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On Redis (production's cache) a fast answer makes one round trip: the generation's GET
    (core.direct_get), sent as it is asked for, so another instance's change is seen by the next one."""
    if not isinstance(caches["default"], RedisCache):
        pytest.skip("service-missing: the default cache is not Redis (REDIS_URL=redis://...)")
    call(app)
    call(app)
    sent: list[bytes] = []
    send = AbstractConnection.send_packed_command

    def counted(self: Any, command: Any, check_health: bool = True) -> Any:
        sent.append(b"".join(command) if isinstance(command, list) else command)
        return send(self, command, check_health)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", counted)
    before = call(app)
    assert django_app.calls == 2 and len(sent) == 1 and b"GET" in sent[0] and b"config-generation" in sent[0]
    added = _key_written_elsewhere()  # another instance's commit: a new generation on the same Redis
    after = call(app)
    assert django_app.calls == 3 and added.kid in after.body.decode() and added.kid not in before.body.decode()
