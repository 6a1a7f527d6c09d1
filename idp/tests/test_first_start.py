"""First start (issue 12 item 1): ``migrate`` alone leaves a working server.

* The database cache's table comes with ``migrate`` (it used to need ``createcachetable``,
  which only ``scripts/up.sh`` ran: every login POST was a 500 without ``REDIS_URL``).
* The first JWKS read already publishes a key for every algorithm a client may use (it
  used to be ``{"keys": []}`` with ``max-age=900`` until the first token was signed), so a
  relying party that loaded the JWKS at start-up verifies the first tokens.

``tests/test_deploy_readme.py`` runs the README's deploy steps end to end."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import jwt
import pytest
from django.core.cache import caches
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.test import Client as HttpClient
from django.urls import reverse
from django.utils import timezone

from clients.models import Client
from core import jwt_tokens, keys
from core.models import KeyStatus, SigningKey
from tests.concurrency import run_concurrently

CLIENT_ALGS = ["ES256", "RS256", "EdDSA"]
DB_CACHE = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "first_start": {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "vigil_first_start_cache"},
}


def _tables() -> set[str]:
    with connection.cursor() as cursor:
        return set(connection.introspection.table_names(cursor))


@pytest.mark.django_db(transaction=True)
def test_migrate_creates_the_database_cache_table(settings: Any) -> None:
    settings.CACHES = DB_CACHE
    assert "vigil_first_start_cache" not in _tables()
    call_command("migrate", verbosity=0)
    assert "vigil_first_start_cache" in _tables()
    caches["first_start"].set("k", "v", 60)
    assert caches["first_start"].get("k") == "v"
    call_command("migrate", verbosity=0)  # a second migrate keeps the table and its rows
    assert caches["first_start"].get("k") == "v"
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE {connection.ops.quote_name('vigil_first_start_cache')}")


def test_every_algorithm_a_client_may_use_is_a_signing_alg() -> None:
    choices = [value for value, _ in Client._meta.get_field("signing_alg").choices or []]
    assert set(choices) == set(CLIENT_ALGS) and set(CLIENT_ALGS) <= set(keys.signing_algs())


@pytest.mark.django_db
def test_first_jwks_read_publishes_a_key_for_every_algorithm() -> None:
    assert not SigningKey.objects.exists()
    response = HttpClient().get(reverse("jwks"))
    assert response.status_code == 200
    assert response["Cache-Control"] == "public, max-age=900"
    published = response.json()["keys"]
    assert sorted(k["alg"] for k in published) == sorted(CLIENT_ALGS)
    assert SigningKey.objects.filter(status=KeyStatus.ACTIVE).count() == 3
    relying_party = jwt.PyJWKSet.from_dict(response.json())  # loaded before any token exists
    for alg in CLIENT_ALGS:
        token = jwt_tokens.sign({"iss": keys.app_settings.ISSUER, "sub": "first"}, alg=alg)
        kid = jwt.get_unverified_header(token)["kid"]
        key = next(k for k in relying_party.keys if k.key_id == kid)
        assert jwt.decode(token, key.key, algorithms=[alg])["sub"] == "first"
    assert HttpClient().get(reverse("jwks")).json() == response.json()  # nothing new after the first read


@pytest.mark.django_db
def test_first_signature_creates_every_algorithms_key_at_once() -> None:
    token = jwt_tokens.sign({"iss": keys.app_settings.ISSUER}, alg="RS256")
    assert sorted(SigningKey.objects.filter(status=KeyStatus.ACTIVE).values_list("alg", flat=True)) == sorted(CLIENT_ALGS)
    published = {k["kid"] for k in HttpClient().get(reverse("jwks")).json()["keys"]}
    assert jwt.get_unverified_header(token)["kid"] in published and len(published) == 3


@pytest.mark.django_db
def test_an_empty_jwks_is_not_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(keys, "signing_algs", list)  # no algorithm at all: nothing to publish
    response = HttpClient().get(reverse("jwks"))
    assert response.json() == {"keys": []}
    assert response["Cache-Control"] == "public, max-age=0"


@pytest.mark.django_db
def test_a_second_active_key_for_an_algorithm_is_refused() -> None:
    keys.ensure_keys()
    with pytest.raises(IntegrityError), transaction.atomic():
        keys.create_key("ES256", status=KeyStatus.ACTIVE, activates_at=timezone.now())
    assert SigningKey.objects.filter(alg="ES256", status=KeyStatus.ACTIVE).count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_processes_starting_together_create_one_key_per_algorithm() -> None:
    """Eight first JWKS reads at once on a fresh PostgreSQL database: each sees the same keys,
    one active key per algorithm."""
    results = run_concurrently(8, lambda _: sorted(k["kid"] for k in keys.jwks()["keys"]))
    assert all(result == results[0] for result in results)
    active = list(SigningKey.objects.filter(status=KeyStatus.ACTIVE).values_list("alg", flat=True))
    assert sorted(active) == sorted(CLIENT_ALGS) and SigningKey.objects.count() == 3


@pytest.mark.django_db(transaction=True)
def test_migration_keeps_the_newest_of_duplicate_active_keys() -> None:
    """A database where two processes raced on an earlier version: two active ES256 keys.
    The migration that adds the constraint keeps the newest signing and the other published
    (retiring) until its tokens expire."""

    before, after = [("idp", "0004_securityevent_idp_secevent_session_id")], [("idp", "0005_one_active_key_per_alg")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    old_model = executor.loader.project_state(before).apps.get_model("idp", "SigningKey")
    now = timezone.now()
    for kid, age in (("older", 60), ("newer", 0)):
        old_model.objects.create(kid=kid, alg="ES256", status="active", public_jwk={}, private_key_encrypted="x",
                                 activates_at=now - timedelta(seconds=age))
    executor = MigrationExecutor(connection)
    executor.migrate(after)
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
    assert SigningKey.objects.get(kid="newer").status == KeyStatus.ACTIVE
    older = SigningKey.objects.get(kid="older")
    assert older.status == KeyStatus.RETIRING
    assert older.remove_after is not None and older.remove_after >= now + timedelta(days=1)
    assert {"older", "newer"} <= {k.kid for k in SigningKey.objects.published()}
