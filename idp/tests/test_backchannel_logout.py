"""OpenID Connect Back-Channel Logout 1.0: every way a session ends reaches the client's
``backchannel_logout_uri`` (§2.5) with a logout token (§2.4) that a relying party validates
with a third-party JOSE library (PyJWT, §2.6); delivery retries transient failures and
stops at a refusal (§2.8)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jwt as pyjwt
import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import transaction
from django.test import Client as BrowserClient
from django.utils import timezone

from clients.flows.registration import ClientRegistrationError, backchannel_logout_uri_problem, register_client
from core import keys
from core.events import EventType
from core.models import SecurityEvent
from idp.backchannel import delivery, listener, logout_token
from sessions.flows.revocation import Reason, revoke_session
from sessions.models import DeviceSession

from .bcl_receiver import EVENT, LogoutReceiver, validate_logout_token
from .test_revocation_reaches_everyone import SESSION, WAYS

#: The relying parties are on 127.0.0.1, which core.outbound refuses unless told otherwise.
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("allow_private_outbound")]
ISSUER = settings.IDP_ISSUER


@pytest.fixture
def family(tokens: dict[str, Any], user: Any, mobile_client: Any) -> DeviceSession:
    client = mobile_client.client
    client.backchannel_logout_uri = "https://rp.example.com/backchannel-logout"
    client.save()
    return DeviceSession.objects.select_related("client", "user").get(user=user)


@pytest.fixture
def enqueued(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    pks: list[int] = []
    monkeypatch.setattr(listener, "enqueue", pks.append)
    return pks


def _local_verifier(audience: str) -> Callable[[str], dict[str, Any]]:
    """PyJWT with the keys of our JWKS document (as served, read now: the receiver's thread
    has no database), no network."""
    published = keys.jwks()["keys"]

    def verify(token: str) -> dict[str, Any]:
        header = pyjwt.get_unverified_header(token)
        assert header["typ"] == "logout+jwt"
        jwk = next(k for k in published if k["kid"] == header["kid"])
        return pyjwt.decode(token, pyjwt.PyJWK(jwk).key, algorithms=[header["alg"]], audience=audience,
                            issuer=ISSUER, options={"require": ["iat", "exp", "jti", "events"]})
    return verify


# --- §2.4 the logout token ---------------------------------------------------------------


def test_logout_token_claims_and_header(family: DeviceSession, user: Any) -> None:
    now = timezone.now()
    token = logout_token.sign(family, now=now)
    claims = _local_verifier(family.client.client_id)(token)
    assert pyjwt.get_unverified_header(token)["alg"] == family.client.signing_alg
    assert claims["events"] == {EVENT: {}}
    assert claims["sub"] == user.get_user_id() and claims["sid"] == family.sid
    assert claims["exp"] - claims["iat"] == logout_token.LIFETIME and claims["iat"] == int(now.timestamp())
    assert "nonce" not in claims


def test_sid_matches_the_id_token(family: DeviceSession, tokens: dict[str, Any]) -> None:
    id_token = pyjwt.decode(tokens["id_token"], options={"verify_signature": False})
    assert _local_verifier(family.client.client_id)(logout_token.sign(family, now=timezone.now()))["sid"] == \
        id_token["sid"]


# --- every way a session ends (issue 13's list, through the one path) ---------------------

SESSION_WAYS = [(way, ends) for way, ends in WAYS if SESSION in ends]


@pytest.mark.parametrize(("way", "ends"), SESSION_WAYS, ids=[w.__name__ for w, _ in SESSION_WAYS])
def test_every_way_a_session_ends_sends_one_logout(
    way: Callable[[dict[str, Any]], None], ends: set[str], family: DeviceSession, tokens: dict[str, Any],
    browser: BrowserClient, admin_client: Any, user: Any, enqueued: list[int],
    django_capture_on_commit_callbacks: Any,
) -> None:
    ctx = {"session": family, "tokens": tokens, "browser": browser, "admin": admin_client, "user": user}
    with django_capture_on_commit_callbacks(execute=True):
        way(ctx)
    assert enqueued == [ctx["session"].pk]


def test_no_uri_no_logout(tokens: dict[str, Any], user: Any, enqueued: list[int],
                          django_capture_on_commit_callbacks: Any) -> None:
    session = DeviceSession.objects.select_related("client").get(user=user)
    with django_capture_on_commit_callbacks(execute=True):
        revoke_session(session, Reason.REVOKED_BY_ADMIN)
    assert enqueued == []


def test_a_rollback_sends_nothing_and_a_second_revocation_nothing_again(
    family: DeviceSession, enqueued: list[int], django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        try:
            with transaction.atomic():
                revoke_session(family, Reason.REVOKED_BY_ADMIN)
                raise RuntimeError("rolled back")
        except RuntimeError:
            pass
    assert enqueued == []
    with django_capture_on_commit_callbacks(execute=True):
        revoke_session(family, Reason.REVOKED_BY_ADMIN)
        revoke_session(family, Reason.REVOKED_BY_ADMIN)
    assert enqueued == [family.pk]


# --- §2.5 / §2.8 delivery -------------------------------------------------------------------


def _deliver_to(family: DeviceSession, rp: LogoutReceiver, *, final: bool) -> str:
    family.client.backchannel_logout_uri = rp.uri
    family.client.save()
    return delivery.deliver(family.pk, final=final)


def test_delivered_and_recorded(family: DeviceSession) -> None:
    with LogoutReceiver(verify=_local_verifier(family.client.client_id)) as rp:
        assert _deliver_to(family, rp, final=False) == "delivered"
    [received] = rp.received
    assert received.status == 200 and received.content_type == "application/x-www-form-urlencoded"
    assert received.claims is not None and received.claims["sid"] == family.sid
    event = SecurityEvent.objects.get(event_type=EventType.OAUTH_BACKCHANNEL_LOGOUT_SENT)
    assert event.session_id == family.sid and event.client_id == family.client.client_id


def test_a_token_for_another_audience_is_refused_by_the_rp_and_not_retried(family: DeviceSession) -> None:
    with LogoutReceiver(verify=_local_verifier("someone-else")) as rp:
        assert _deliver_to(family, rp, final=False).startswith("failed: HTTP 400")
    assert [r.status for r in rp.received] == [400]
    assert SecurityEvent.objects.filter(event_type=EventType.OAUTH_BACKCHANNEL_LOGOUT_FAILED).count() == 1
    assert not SecurityEvent.objects.filter(event_type=EventType.OAUTH_BACKCHANNEL_LOGOUT_SENT).exists()


@pytest.mark.parametrize("status", [500, 503, 429])
def test_transient_failures_raise_for_a_retry_then_fail_for_good(family: DeviceSession, status: int) -> None:
    with LogoutReceiver(verify=_local_verifier(family.client.client_id), statuses=[status]) as rp:
        with pytest.raises(delivery.LogoutRetry):
            _deliver_to(family, rp, final=False)
        assert not SecurityEvent.objects.filter(event_type=EventType.OAUTH_BACKCHANNEL_LOGOUT_FAILED).exists()
        assert _deliver_to(family, rp, final=True) == f"failed: HTTP {status}"
    assert SecurityEvent.objects.filter(event_type=EventType.OAUTH_BACKCHANNEL_LOGOUT_FAILED).count() == 1


def test_an_unreachable_rp_is_retried(family: DeviceSession) -> None:
    family.client.backchannel_logout_uri = "http://127.0.0.1:9/backchannel-logout"
    family.client.save()
    with pytest.raises(delivery.LogoutRetry):
        delivery.deliver(family.pk, final=False)


def test_a_gone_session_or_uri_sends_nothing(family: DeviceSession) -> None:
    assert delivery.deliver(0, final=True) == "nothing to send"
    family.client.backchannel_logout_uri = ""
    family.client.save()
    assert delivery.deliver(family.pk, final=True) == "nothing to send"
    assert not SecurityEvent.objects.filter(event_type__startswith="oauth.backchannel_logout").exists()


# --- registration -------------------------------------------------------------------------------


@pytest.mark.parametrize("uri", ["http://rp.example.com/bcl", "https://rp.example.com/bcl#frag", "ftp://x/y",
                                 "https:///nohost", "not a url"])
def test_bad_backchannel_logout_uris_are_refused(uri: str) -> None:
    assert backchannel_logout_uri_problem(uri)
    with pytest.raises(ClientRegistrationError):
        register_client(name="RP", public=False, redirect_uris=["https://rp.example.com/cb"],
                        backchannel_logout_uri=uri)


@pytest.mark.parametrize("uri", ["", "https://rp.example.com/bcl?x=1", "http://127.0.0.1:8000/bcl",
                                 "http://localhost/bcl"])
def test_good_backchannel_logout_uris(uri: str) -> None:
    assert backchannel_logout_uri_problem(uri) is None


def test_create_client_registers_backchannel_logout(capsys: pytest.CaptureFixture[str]) -> None:
    call_command("create_client", "--name", "RP", "--confidential", "--redirect-uri", "https://rp.example.com/cb",
                 "--backchannel-logout-uri", "https://rp.example.com/bcl", "--backchannel-logout-session-required",
                 "--client-id", "rp-bcl")
    from clients.models import Client

    client = Client.objects.get(client_id="rp-bcl")
    assert client.backchannel_logout_uri == "https://rp.example.com/bcl"
    assert client.backchannel_logout_session_required is True


def test_admin_form_refuses_an_http_uri(admin_client: Any, mobile_client: Any) -> None:
    from idp.admin import ClientForm

    client = mobile_client.client
    form = ClientForm(instance=client, data={
        **{f: getattr(client, f) for f in ("client_id", "name", "client_type", "signing_alg")},
        "auth_methods": ["none"], "allowed_scopes": '["openid"]', "grant_types": '["authorization_code"]',
        "redirect_uris": '["com.example.app:/oauth2redirect"]', "post_logout_redirect_uris": "[]",
        "allowed_audiences": "[]", "served_resources": "[]", "token_exchange_audiences": "[]", "jwks": "{}",
        "backchannel_logout_uri": "http://rp.example.com/bcl", "require_pkce": True,
        "created_at": timezone.now(), "is_active": True,
    })
    assert not form.is_valid()
    assert "backchannel_logout_uri" in form.errors


def test_discovery_advertises_backchannel_logout(client: BrowserClient) -> None:
    served = client.get("/.well-known/openid-configuration").json()
    assert served["backchannel_logout_supported"] is True and served["backchannel_logout_session_supported"] is True


def test_rp_validation_rejects_tampering(family: DeviceSession) -> None:
    """The receiver's validation is real: a token signed with another key fails it."""
    from joserfc import jwt as jose_jwt
    from joserfc.jwk import ECKey

    claims = logout_token.claims_for(family, now=timezone.now())
    forged = jose_jwt.encode({"alg": "ES256", "typ": "logout+jwt", "kid": keys.jwks()["keys"][0]["kid"]}, claims,
                             ECKey.generate_key("P-256", private=True), algorithms=["ES256"])
    with pytest.raises(Exception):  # noqa: B017  (PyJWT's error class depends on the key type)
        _local_verifier(family.client.client_id)(forged)


@pytest.mark.django_db(transaction=True)
def test_the_rps_validator_checks_what_section_2_6_asks(family: DeviceSession, live_server: Any) -> None:
    """The live test's validator refuses a token with a nonce, and one without the event."""
    def signed(**changes: Any) -> str:
        claims = {**logout_token.claims_for(family, now=timezone.now()), **changes}
        from core import jwt_tokens

        return jwt_tokens.sign(claims, alg=family.client.signing_alg, typ="logout+jwt")

    check = {"jwks_url": f"{live_server.url}/jwks.json", "issuer": ISSUER, "audience": family.client.client_id}
    assert validate_logout_token(signed(), **check)["sid"] == family.sid
    for bad in (signed(nonce="n"), signed(events={"other": {}})):
        with pytest.raises(ValueError):
            validate_logout_token(bad, **check)


# --- a broker outage loses nothing: a logout is owed from the revocation until settled -------


def _owed() -> list[int]:
    from idp.models import PendingLogout

    return list(PendingLogout.objects.values_list("session_id", flat=True))


def test_the_logout_is_owed_with_the_revocation_and_a_rollback_owes_nothing(
    family: DeviceSession, enqueued: list[int], django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        try:
            with transaction.atomic():
                revoke_session(family, Reason.REVOKED_BY_ADMIN)
                assert _owed() == [family.pk]
                raise RuntimeError("rolled back")
        except RuntimeError:
            pass
    assert _owed() == [] and enqueued == []
    with django_capture_on_commit_callbacks(execute=True):
        revoke_session(family, Reason.REVOKED_BY_ADMIN)
    assert _owed() == [family.pk] and enqueued == [family.pk]


def test_a_broker_down_at_revocation_is_queued_once_it_is_back(
    family: DeviceSession, monkeypatch: pytest.MonkeyPatch, django_capture_on_commit_callbacks: Any
) -> None:
    from datetime import timedelta

    from kombu.exceptions import OperationalError

    from idp import tasks
    from idp.models import PendingLogout

    def broker_down(session_pk: int) -> None:
        raise OperationalError("[Errno 111] Connection refused")

    monkeypatch.setattr(tasks.send_backchannel_logout, "delay", broker_down)
    with django_capture_on_commit_callbacks(execute=True):
        assert revoke_session(family, Reason.REVOKED_BY_ADMIN)  # the revocation itself stands
    pending = PendingLogout.objects.get(session_id=family.pk)
    assert pending.enqueued_at is None
    assert DeviceSession.objects.get(pk=family.pk).status == "revoked"

    queued: list[int] = []
    monkeypatch.setattr(tasks.send_backchannel_logout, "delay", queued.append)
    assert tasks.resend_pending_logouts() == 0  # just revoked: left to the request's own queueing
    PendingLogout.objects.filter(pk=pending.pk).update(created_at=timezone.now() - timedelta(minutes=2))
    assert tasks.resend_pending_logouts() == 1 and queued == [family.pk]
    assert tasks.resend_pending_logouts() == 0 and queued == [family.pk]  # in flight: not queued twice
    PendingLogout.objects.filter(pk=pending.pk).update(enqueued_at=timezone.now() - timedelta(minutes=31))
    assert tasks.resend_pending_logouts() == 1 and queued == [family.pk, family.pk]  # lost: queued again


def test_delivery_settles_what_is_owed_and_a_retry_keeps_it(family: DeviceSession) -> None:
    from idp.models import PendingLogout

    PendingLogout.objects.create(session_id=family.pk)
    with LogoutReceiver(verify=_local_verifier(family.client.client_id), statuses=[503, 200]) as rp:
        with pytest.raises(delivery.LogoutRetry):
            _deliver_to(family, rp, final=False)
        assert _owed() == [family.pk]  # a retry is on its way
        assert _deliver_to(family, rp, final=False) == "delivered"
    assert _owed() == []
    PendingLogout.objects.create(session_id=family.pk)
    with LogoutReceiver(verify=_local_verifier("someone-else")) as rp:
        assert _deliver_to(family, rp, final=False).startswith("failed: HTTP 400")
    assert _owed() == []  # refused for good: settled, recorded
