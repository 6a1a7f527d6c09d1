"""The JWKS and discovery served from memory (issue 19, idp/documents.py): no SQL once warm,
and still right the request after a key changes anywhere: rotated, withdrawn or retired on
another process (the shared config generation changes), or by time alone (a scheduled
activation or retirement passing, with no process writing anything first)."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.core.cache import cache
from django.test import Client as HttpClient
from django.urls import reverse

from core import config_cache, keys, sql
from core.models import KeyStatus, SigningKey
from tests.cache_outage import redis_unreachable
from tests.celery_support import worker_database_url
from tests.written_elsewhere import elsewhere

pytestmark = pytest.mark.django_db

START = dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.UTC)
ROOT = Path(__file__).resolve().parents[2]


def _jwks() -> Any:
    return HttpClient().get(reverse("jwks"))


def _kids(response: Any) -> set[str]:
    assert response.status_code == 200
    return {k["kid"] for k in response.json()["keys"]}


def _another_process_committed() -> None:
    """What another process's commit of a configuration change does to the shared cache
    (``config_cache._publish_change``), without touching this process's copies."""
    cache.set(config_cache.GENERATION_KEY, os.urandom(8).hex(), timeout=None)


def _key_written_elsewhere(alg: str, status: str, activates_at: dt.datetime) -> SigningKey:
    """A key row inserted without this process's signals, as another process would."""
    private = keys.generate_private_key(alg)
    public = {**private.as_dict(private=False), "kid": private.thumbprint(), "alg": alg, "use": "sig"}
    row = SigningKey(kid=private.thumbprint(), alg=alg, status=status, public_jwk=public,
                     private_key_encrypted="-", activates_at=activates_at)
    sql.insert([row])
    return row


def test_warm_jwks_and_discovery_run_no_sql(django_assert_num_queries: Any) -> None:
    keys.ensure_keys()
    cold = {name: HttpClient().get(reverse(name))
            for name in ("jwks", "openid-configuration", "oauth-authorization-server")}
    with django_assert_num_queries(0):
        warm = {name: HttpClient().get(reverse(name)) for name in cold}
    for name, response in warm.items():
        assert response.status_code == 200
        assert response.content == cold[name].content
        assert response["Content-Type"] == "application/json"
    assert warm["jwks"]["Cache-Control"] == "public, max-age=900"
    assert warm["openid-configuration"]["Cache-Control"] == "public, max-age=3600"
    assert warm["jwks"].json() == keys.jwks()


def test_a_key_rotated_on_another_process_is_served_at_the_next_request() -> None:
    keys.ensure_keys()
    before = _kids(_jwks())
    added = _key_written_elsewhere("ES256", KeyStatus.NEXT, dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
    assert _kids(_jwks()) == before  # not committed anywhere yet: the copy stands
    _another_process_committed()
    assert _kids(_jwks()) == before | {added.kid}


def test_a_key_withdrawn_on_another_process_leaves_at_the_next_request() -> None:
    keys.ensure_keys()
    queued = keys.rotate("ES256")
    assert queued.kid in _kids(_jwks())
    elsewhere(SigningKey).filter(pk=queued.pk).update(status=KeyStatus.RETIRED)  # another process
    _another_process_committed()
    assert queued.kid not in _kids(_jwks())


def test_an_emergency_rotation_here_is_served_at_once() -> None:
    keys.ensure_keys()
    queued = keys.rotate("ES256")
    old, _ = keys.active_key("ES256")
    _jwks()
    key, withdrawn = keys.rotate_now("ES256")
    served = _kids(_jwks())
    assert withdrawn == [queued.kid]
    assert key.kid in served and old in served and queued.kid not in served


def test_a_scheduled_activation_passing_is_applied_at_the_next_request(time_machine: Any) -> None:
    """No process writes anything at ``activates_at``: the copy ends there by itself, and the
    request after it promotes the key (and withdraws a stale queued one, which leaves the JWKS)."""
    time_machine.move_to(START, tick=False)
    keys.ensure_keys()
    signer, _ = keys.active_key("ES256")
    successor = keys.rotate("ES256")  # signs at START + 1 h
    stale = _key_written_elsewhere("ES256", KeyStatus.NEXT, successor.activates_at)
    elsewhere(SigningKey).filter(pk=stale.pk).update(created_at=START - dt.timedelta(days=1))  # queued before the signer
    assert {successor.kid, stale.kid} <= _kids(_jwks())
    time_machine.move_to(successor.activates_at - dt.timedelta(seconds=1), tick=False)
    assert stale.kid in _kids(_jwks())
    time_machine.move_to(successor.activates_at, tick=False)
    served = _kids(_jwks())
    assert stale.kid not in served and successor.kid in served and signer in served
    assert SigningKey.objects.get(pk=successor.pk).status == KeyStatus.ACTIVE


def test_a_retirement_passing_removes_the_key_at_the_next_request(time_machine: Any) -> None:
    time_machine.move_to(START, tick=False)
    keys.ensure_keys()
    old, _ = keys.active_key("ES256")
    keys.rotate_now("ES256")
    retiring = SigningKey.objects.get(kid=old)
    assert retiring.status == KeyStatus.RETIRING and retiring.remove_after is not None
    assert old in _kids(_jwks())
    time_machine.move_to(retiring.remove_after - dt.timedelta(seconds=1), tick=False)
    assert old in _kids(_jwks())
    time_machine.move_to(retiring.remove_after, tick=False)
    assert old not in _kids(_jwks())


def test_with_the_shared_cache_down_the_jwks_is_read_from_the_database() -> None:
    keys.ensure_keys()
    queued = keys.rotate("ES256")
    assert queued.kid in _kids(_jwks())
    with redis_unreachable():  # every cache call fails, and nothing else changes
        elsewhere(SigningKey).filter(pk=queued.pk).update(status=KeyStatus.RETIRED)  # no generation can be published
        assert queued.kid not in _kids(_jwks())  # never the stale copy


def test_discovery_follows_a_setting_change(settings: Any) -> None:
    first = HttpClient().get(reverse("openid-configuration")).json()
    settings.IDP_ISSUER = "https://id.example.org"
    second = HttpClient().get(reverse("openid-configuration")).json()
    assert first["issuer"] != second["issuer"] == "https://id.example.org"
    assert second["jwks_uri"] == "https://id.example.org/jwks.json"


def test_the_jwks_follows_a_setting_change(settings: Any) -> None:
    keys.ensure_keys()
    assert _jwks()["Cache-Control"] == "public, max-age=900"
    settings.IDP_JWKS_CACHE_SECONDS = 300
    assert _jwks()["Cache-Control"] == "public, max-age=300"


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_a_rotation_in_another_process_reaches_this_one_at_its_next_request() -> None:
    """Two real processes on the test database and Redis: ``rotate_keys --now`` in a subprocess
    withdraws the key queued here and adds its own; this process serves that next."""
    keys.ensure_keys()
    old, _ = keys.active_key("ES256")
    queued = keys.rotate("ES256")
    assert queued.kid in _kids(_jwks())
    env = {**os.environ, "DATABASE_URL": worker_database_url(), "VIGIL_TESTING": "1"}
    done = subprocess.run([sys.executable, "manage.py", "rotate_keys", "--alg", "ES256", "--now"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    new = SigningKey.objects.get(alg="ES256", status=KeyStatus.ACTIVE).kid
    served = _kids(_jwks())
    assert new != old and new in served and old in served and queued.kid not in served
