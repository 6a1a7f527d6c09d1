"""The per-process configuration copies (core/config_cache.py): served only while the shared
generation is unchanged, so a change made anywhere reaches every worker on its next request."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.cache import cache
from django.core.signals import request_finished, request_started
from django.test import Client as HttpClient
from django.urls import reverse
from django.utils import timezone

from clients.models import Client
from core import config_cache, jwt_tokens, keys
from core.app_settings import app_settings
from core.models import KeyStatus, SigningKey
from tests.cache_outage import redis_unreachable
from tests.written_elsewhere import elsewhere

from .conftest import form_post

pytestmark = pytest.mark.django_db


class Loader:
    """Counts how often the database would have been read."""

    def __init__(self, value: Any) -> None:
        self.value, self.calls = value, 0

    def __call__(self) -> Any:
        self.calls += 1
        return self.value


def test_a_copy_is_served_while_the_generation_holds() -> None:
    load = Loader({"rules": 1})
    assert config_cache.cached("k", load) == {"rules": 1}
    assert config_cache.cached("k", load) == {"rules": 1}
    assert load.calls == 1


def test_another_process_publishing_a_change_invalidates_this_ones_copies() -> None:
    config_cache.cached("k", Loader("old"))
    cache.set(config_cache.GENERATION_KEY, "published-by-another-worker")  # what _publish_change does there
    assert config_cache.cached("k", Loader("new")) == "new"


def test_a_saved_model_changes_the_generation_on_commit(django_capture_on_commit_callbacks: Any) -> None:
    config_cache.cached("k", Loader("old"))
    before = cache.get(config_cache.GENERATION_KEY)
    with django_capture_on_commit_callbacks(execute=True):
        Client.objects.create(client_id="x", name="X", redirect_uris=["https://x.example/cb"])
    assert cache.get(config_cache.GENERATION_KEY) != before
    assert config_cache.cached("k", Loader("new")) == "new"


def test_before_commit_other_processes_keep_the_old_generation(django_capture_on_commit_callbacks: Any) -> None:
    before = cache.get(config_cache.GENERATION_KEY) or config_cache._shared_generation()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        Client.objects.create(client_id="x", name="X", redirect_uris=["https://x.example/cb"])
    assert cache.get(config_cache.GENERATION_KEY) == before  # not yet committed: not yet published
    assert callbacks  # published once the transaction commits


def test_none_is_never_kept() -> None:
    load = Loader(None)
    config_cache.cached("unknown", load)
    config_cache.cached("unknown", load)
    assert load.calls == 2


def test_copies_are_bypassed_when_the_shared_cache_is_down() -> None:
    load = Loader("value")
    config_cache.cached("k", load)
    with redis_unreachable():  # every read of the generation fails, and nothing else changes
        assert config_cache.cached("k", load) == "value"
        assert config_cache.cached("k", load) == "value"
        assert config_cache.held("k") is None
    assert load.calls == 3


def test_a_request_reads_the_generation_once() -> None:
    request_started.send(sender=None)
    try:
        assert config_cache.cached("k", Loader("first")) == "first"
        cache.set(config_cache.GENERATION_KEY, "changed-mid-request")
        assert config_cache.cached("k", Loader("second")) == "first"  # one consistent view per request
    finally:
        request_finished.send(sender=None)
    assert config_cache.cached("k", Loader("second")) == "second"


def test_a_disabled_client_is_refused_at_once(tokens: Any, mobile_client: Any,
                                             django_capture_on_commit_callbacks: Any) -> None:
    """The token endpoint reads clients from the copies: disabling one in the admin must not
    leave it usable anywhere."""
    client = mobile_client.client
    keys.ensure_keys()
    first = form_post(HttpClient(), reverse("token"), {"grant_type": "refresh_token", "client_id": client.client_id,
                                                        "refresh_token": tokens["refresh_token"]})
    assert first.status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        client.is_active = False
        client.save(update_fields=["is_active"])
    refused = form_post(HttpClient(), reverse("token"), {"grant_type": "refresh_token", "client_id": client.client_id,
                                                          "refresh_token": first.json()["refresh_token"]})
    assert refused.json()["error"] == "invalid_client", refused.content
    assert refused.status_code in (400, 401)


def test_a_rotated_key_signs_the_next_token(tokens: Any, mobile_client: Any,
                                           django_capture_on_commit_callbacks: Any) -> None:
    import jwt

    client = mobile_client.client
    keys.ensure_keys()
    data = {"grant_type": "refresh_token", "client_id": client.client_id, "refresh_token": tokens["refresh_token"]}
    first = form_post(HttpClient(), reverse("token"), data).json()
    with django_capture_on_commit_callbacks(execute=True):
        new = keys.rotate(client.signing_alg, immediately=True)
    data["refresh_token"] = first["refresh_token"]
    second = form_post(HttpClient(), reverse("token"), data).json()
    assert jwt.get_unverified_header(first["access_token"])["kid"] != new.kid
    assert jwt.get_unverified_header(second["access_token"])["kid"] == new.kid


def test_a_key_retired_by_another_process_stops_verifying_here_at_the_next_request() -> None:
    """A key's retirement runs wherever ``keys.advance()`` runs first (a worker's rotation
    task, another web instance): this process stops trusting the key as soon as the
    generation changes, though it parsed and used it a moment before."""
    now = int(timezone.now().timestamp())
    token = jwt_tokens.sign({"iss": app_settings.ISSUER, "sub": "someone", "exp": now + 60}, alg="ES256")
    kid, _ = keys.active_key("ES256")
    assert jwt_tokens.verify(token)["sub"] == "someone"
    elsewhere(SigningKey).filter(kid=kid).update(status=KeyStatus.RETIRED)  # another process, not yet committed
    assert jwt_tokens.verify(token)["sub"] == "someone"  # still this generation: this process's copy
    cache.set(config_cache.GENERATION_KEY, "published-by-another-process")  # that process's commit
    with pytest.raises(jwt_tokens.TokenInvalid, match="unknown kid"):
        jwt_tokens.verify(token)


def test_a_copy_that_is_no_longer_fresh_is_reloaded_under_the_same_generation() -> None:
    """``fresh``: for copies that also end with time (the JWKS at its next key transition)."""
    load = Loader({"until": 1})
    assert config_cache.cached("k", load, fresh=lambda held: held["until"] > 0) == {"until": 1}
    assert config_cache.cached("k", load, fresh=lambda held: held["until"] > 0) == {"until": 1}
    assert load.calls == 1
    assert config_cache.cached("k", load, fresh=lambda held: held["until"] > 1) == {"until": 1}
    assert load.calls == 2
