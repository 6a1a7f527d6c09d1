"""Bulk writes to watched configuration reach every process's copies (``core.config_cache``).

``QuerySet.update()``, ``bulk_update()`` and ``bulk_create()`` send no model signal. The
querysets of every watched model (``ConfigQuerySet``) change the configuration generation
themselves, on commit, so a client deactivated by ``Client.objects.filter(...).update(...)``
(a script, a bulk admin action) gets no new token from any process's copy of it: before, every
process holding the client kept issuing tokens (signed JWTs that relying services validating
offline accept until they expire) until the next configuration change.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.test import Client as HttpClient
from django.urls import reverse
from django.utils import timezone

from clients.flows.registration import RegisteredClient
from clients.models import Client
from core import config_cache, keys
from core.events import EventType
from core.models import SecurityEvent, SigningKey
from device_health.models import HealthPolicy, HealthRule
from sessions.models import AccessToken, AuthorizationCode, RefreshToken

from .conftest import exchange, form_post, get_code, make_pkce
from .test_token import basic

pytestmark = pytest.mark.django_db

WHERE = ["this_process", "another_process"]


def _generation() -> Any:
    return cache.get(config_cache.GENERATION_KEY) or config_cache._shared_generation()


def _deactivate(client: Client, where: str, capture: Any) -> None:
    """``QuerySet.update(is_active=False)``, committed. ``another_process``: this process plays a
    worker that holds the copies it held before (the write happened elsewhere), so only the
    generation published on commit can keep it from serving them."""
    other_worker = dict(config_cache._copies)
    assert ("client", client.client_id) in other_worker  # warm: the client is held
    before = _generation()
    with capture(execute=True):
        assert Client.objects.filter(pk=client.pk).update(is_active=False) == 1
    assert _generation() != before
    if where == "another_process":
        config_cache._copies.update(other_worker)


def _issued() -> tuple[int, int]:
    return AccessToken.objects.count(), RefreshToken.objects.count()


def _refused_as_unknown(response: Any) -> None:
    """Read afresh, an inactive client is no client (``active_client``): ``invalid_client``."""
    assert response.status_code == 401, response.content
    assert response.json()["error"] == "invalid_client"
    event = SecurityEvent.objects.filter(event_type=EventType.OAUTH_ERROR).latest("id")
    assert (event.reason, event.details["auth_failure"]) == ("invalid_client", "unknown_client")


@pytest.mark.parametrize("where", WHERE)
def test_client_credentials_of_a_client_deactivated_by_update_are_refused(
    where: str, service_client: RegisteredClient, django_capture_on_commit_callbacks: Any
) -> None:
    client_id, secret = service_client.client.client_id, service_client.secret
    assert secret is not None
    keys.ensure_keys()

    def request() -> Any:
        return form_post(HttpClient(), reverse("token"), {"grant_type": "client_credentials"},
                         HTTP_AUTHORIZATION=basic(client_id, secret))

    assert request().status_code == 200  # the copy now holds the client
    _deactivate(service_client.client, where, django_capture_on_commit_callbacks)
    before = _issued()
    _refused_as_unknown(request())
    assert _issued() == before  # no token signed


@pytest.mark.parametrize("where", WHERE)
def test_a_code_exchange_by_a_client_deactivated_by_update_is_refused(
    where: str, tokens: dict[str, Any], browser: Any, mobile_client: RegisteredClient,
    django_capture_on_commit_callbacks: Any,
) -> None:
    """``tokens``: one exchange already made, so the copy holds the client; the code below was
    issued while the client was active, and is not spent by the refusal."""
    client_id, pkce = mobile_client.client.client_id, make_pkce()
    code, _ = get_code(browser, client_id, pkce)
    _deactivate(mobile_client.client, where, django_capture_on_commit_callbacks)
    before, codes = _issued(), list(AuthorizationCode.objects.values_list("pk", "used_at"))
    _refused_as_unknown(exchange(HttpClient(), code, pkce, client_id))
    assert _issued() == before
    assert list(AuthorizationCode.objects.values_list("pk", "used_at")) == codes


def _update(client: Client) -> int:
    return Client.objects.filter(pk=client.pk).update(name="Renamed")


def _related_update(client: Client) -> int:
    return client.registered_apps.update(allow_unattested_devices=True)  # a related manager: the same queryset


def _bulk_update(client: Client) -> int:
    key = SigningKey.objects.first()
    assert key is not None
    key.remove_after = timezone.now()
    return SigningKey.objects.bulk_update([key], ["remove_after"])


def _bulk_create(client: Client) -> int:
    rule = HealthRule(policy=HealthPolicy.objects.get(client=client), name="r", condition="unattested", outcome="deny")
    return len(HealthRule.objects.bulk_create([rule]))  # what the admin's "add the default rules" does


WRITES: dict[str, Callable[[Client], int]] = {
    "update": _update, "related_update": _related_update, "bulk_update": _bulk_update, "bulk_create": _bulk_create,
}


@pytest.mark.parametrize("write", WRITES)
def test_a_bulk_write_changes_the_generation_only_on_commit(
    write: str, mobile_client: RegisteredClient, django_capture_on_commit_callbacks: Any
) -> None:
    """Before the commit other processes keep reading the old rows under the old generation;
    this process drops its copies at once (it may read its own uncommitted rows)."""
    from attestation.models import RegisteredApp

    keys.ensure_keys()
    RegisteredApp.objects.create(client=mobile_client.client, platform="android", android_package_name="com.example.app")
    HealthPolicy.objects.create(client=mobile_client.client)
    config_cache.cached("k", lambda: "held")  # after the saves above, which change the generation themselves
    before = _generation()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert WRITES[write](mobile_client.client) >= 1
    assert config_cache.held("k") is None  # this process's copies: dropped now
    assert _generation() == before and callbacks  # the others': not before the commit
    for callback in callbacks:
        callback()
    assert _generation() != before


@pytest.mark.parametrize("write", [
    lambda: Client.objects.filter(client_id="no-such-client").update(is_active=False),
    lambda: SigningKey.objects.bulk_update([], ["status"]),
    lambda: HealthRule.objects.bulk_create([]),
], ids=["update", "bulk_update", "bulk_create"])
def test_a_bulk_write_that_matches_no_row_changes_nothing(
    write: Callable[[], int], mobile_client: RegisteredClient, django_capture_on_commit_callbacks: Any
) -> None:
    config_cache.cached("k", lambda: "held")
    before = _generation()
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        assert not write()
    assert callbacks == [] and _generation() == before
    assert config_cache.held("k") == "held"  # no process reloads


def test_an_update_rolled_back_publishes_nothing(
    mobile_client: RegisteredClient, django_capture_on_commit_callbacks: Any
) -> None:
    before = _generation()
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(RuntimeError), transaction.atomic():
            assert Client.objects.filter(pk=mobile_client.client.pk).update(is_active=False) == 1
            raise RuntimeError("rolled back")
    assert callbacks == [] and _generation() == before
    assert Client.objects.get(pk=mobile_client.client.pk).is_active


def test_watch_refuses_a_model_whose_queryset_would_not_publish_its_bulk_writes() -> None:
    """A programming error found when the process starts (``AppConfig.ready``), not by a
    client that keeps its tokens: nothing is connected for the refused model."""
    with pytest.raises(ImproperlyConfigured, match=r"core\.SecurityEvent\.objects .* not a ConfigQuerySet"):
        config_cache.watch(SecurityEvent)
    label = SecurityEvent._meta.label
    assert not post_save.disconnect(sender=SecurityEvent, dispatch_uid=f"config-cache-save-{label}")
    assert not post_delete.disconnect(sender=SecurityEvent, dispatch_uid=f"config-cache-delete-{label}")


def test_every_watched_model_is_accepted() -> None:
    config_cache.watch(Client, SigningKey, HealthPolicy, HealthRule)  # idempotent: connected by uid
    from attestation.models import RegisteredApp

    config_cache.watch(RegisteredApp)


# --- a bulk deactivation ends the client's families and tokens, as save() does -----------------


def _live(client: Client) -> tuple[int, int]:
    return (AccessToken.objects.filter(client=client, revoked_at=None).count(),
            RefreshToken.objects.filter(session__client=client, revoked_at=None).count())


@pytest.mark.parametrize("write", ["update", "bulk_update"])
def test_a_bulk_deactivation_ends_the_clients_families_and_tokens_on_record(
    write: str, tokens: dict[str, Any], mobile_client: RegisteredClient, service_client: RegisteredClient
) -> None:
    """Django sends no ``post_save`` for a bulk write; ``ClientQuerySet`` announces it
    (``clients.signals.deactivated_in_bulk``), so the families end and relying services are
    told, where before the tokens were only refused where used and nobody was told."""
    from sessions.models import DeviceSession, SessionStatus

    client = mobile_client.client
    assert _live(client) == (1, 1)
    if write == "update":
        assert Client.objects.filter(pk__in=[client.pk, service_client.client.pk]).update(is_active=False) == 2
    else:
        client.is_active = False
        assert Client.objects.bulk_update([client], ["is_active"]) == 1
    assert _live(client) == (0, 0)
    session = DeviceSession.objects.get(client=client)
    assert (session.status, session.status_reason) == (SessionStatus.REVOKED, "client_deactivated")
    assert SecurityEvent.objects.filter(event_type="session.revoked", session_id=session.sid).count() == 1
    assert not Client.objects.get(pk=client.pk).is_active


@pytest.mark.parametrize("change", [{"name": "Renamed"}, {"is_active": True}])
def test_a_bulk_write_that_deactivates_nothing_ends_nothing(
    change: dict[str, Any], tokens: dict[str, Any], mobile_client: RegisteredClient
) -> None:
    client = mobile_client.client
    events = SecurityEvent.objects.count()
    assert Client.objects.filter(pk=client.pk).update(**change) == 1
    client.refresh_from_db()
    client.name = "Renamed again"
    assert Client.objects.bulk_update([client], ["name", "is_active"]) == 1  # active as it was
    assert _live(client) == (1, 1)
    assert SecurityEvent.objects.count() == events


def test_a_client_already_inactive_is_not_ended_again(tokens: dict[str, Any], mobile_client: RegisteredClient) -> None:
    client = mobile_client.client
    assert Client.objects.filter(pk=client.pk).update(is_active=False) == 1
    events = SecurityEvent.objects.count()
    assert Client.objects.filter(pk=client.pk).update(is_active=False) == 1
    assert SecurityEvent.objects.count() == events


def test_a_bulk_deactivation_rolled_back_ends_nothing(tokens: dict[str, Any], mobile_client: RegisteredClient) -> None:
    client = mobile_client.client
    events = SecurityEvent.objects.count()
    with pytest.raises(RuntimeError), transaction.atomic():
        Client.objects.filter(pk=client.pk).update(is_active=False)
        raise RuntimeError("the script fails after its update")
    assert _live(client) == (1, 1)
    assert Client.objects.get(pk=client.pk).is_active
    assert SecurityEvent.objects.count() == events
