"""The refresh lifecycle (``sessions.flows.refresh``) and the code redemption
(``sessions.flows.code_exchange``), step by step: every result of the judge, pure with an
injected clock where it can be, and against the database for rotation, grace retry and the
refusals, which change nothing (RFC 9700 §4.14.2; RFC 6749 §4.1.2, §6; RFC 9449 §5)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client as HttpClient
from django.urls import reverse

from clients.models import Client
from core.crypto import token_digest
from core.models import SecurityEvent
from idp.tests.conftest import form_post, get_code
from sessions.flows import code_exchange, refresh
from sessions.flows.refresh import Refusal, Refused, Rotated
from sessions.flows.tokens import IssuedTokens
from sessions.models import AccessToken, AuthorizationCode, DeviceSession, RefreshToken, SessionStatus
from tests.written_elsewhere import elsewhere

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)


def _token(*, status: str = SessionStatus.ACTIVE, rotated: int | None = None, revoked: bool = False,
           expires_in: int = 3600, dpop_jkt: str = "", client_active: bool = True) -> RefreshToken:
    """An unsaved token of an unsaved family: the judge reads only what it is given."""
    session = DeviceSession(status=status, dpop_jkt=dpop_jkt, client=Client(is_active=client_active))
    return RefreshToken(
        session=session,
        rotated_at=NOW - dt.timedelta(seconds=rotated) if rotated is not None else None,
        revoked_at=NOW if revoked else None,
        expires_at=NOW + dt.timedelta(seconds=expires_in),
    )


def _no_successor() -> str | None:
    raise AssertionError("the successor is looked up only for a rotated token inside the grace window")


# --- the judge, without a database -------------------------------------------------------------
def test_a_live_token_may_be_rotated() -> None:
    assert refresh.judge(_token(), now=NOW, successor=_no_successor) is None


def test_expired() -> None:
    assert refresh.judge(_token(expires_in=0), now=NOW, successor=_no_successor) == Refusal.EXPIRED


def test_a_revoked_family_is_revoked() -> None:
    token = _token(status=SessionStatus.REVOKED, revoked=True)
    assert refresh.judge(token, now=NOW, successor=_no_successor) == Refusal.REVOKED


def test_a_family_of_an_inactive_client_is_refused_before_reuse_is_judged(settings: Any) -> None:
    """Deactivated by a ``QuerySet.update`` (no signal ended the family): nothing is judged
    further, so not even reuse revokes anything (test_deactivated_client_tokens.py)."""
    settings.IDP_REFRESH_TOKEN_GRACE_SECONDS = 10
    for token in (_token(client_active=False), _token(client_active=False, rotated=11),
                  _token(client_active=False, revoked=True)):
        assert refresh.judge(token, now=NOW, successor=_no_successor) == Refusal.CLIENT_INACTIVE
    revoked_family = _token(status=SessionStatus.REVOKED, client_active=False)
    assert refresh.judge(revoked_family, now=NOW, successor=_no_successor) == Refusal.REVOKED


def test_a_revoked_token_of_a_live_family_is_reuse() -> None:
    assert refresh.judge(_token(revoked=True), now=NOW, successor=_no_successor) == Refusal.REUSE


def test_reused_outside_the_grace_window(settings: Any) -> None:
    settings.IDP_REFRESH_TOKEN_GRACE_SECONDS = 10
    assert refresh.judge(_token(rotated=11), now=NOW, successor=_no_successor) == Refusal.REUSE


def test_inside_the_window_with_the_successor_used_is_reuse(settings: Any) -> None:
    settings.IDP_REFRESH_TOKEN_GRACE_SECONDS = 10
    assert refresh.judge(_token(rotated=5), now=NOW, successor=lambda: None) == Refusal.REUSE


def test_grace_retry(settings: Any) -> None:
    settings.IDP_REFRESH_TOKEN_GRACE_SECONDS = 10
    assert refresh.judge(_token(rotated=10), now=NOW, successor=lambda: "the-successor") is None


def test_no_grace_at_all_makes_every_second_use_reuse(settings: Any) -> None:
    settings.IDP_REFRESH_TOKEN_GRACE_SECONDS = 0
    assert refresh.judge(_token(rotated=0), now=NOW, successor=lambda: "the-successor") == Refusal.REUSE


def test_step_up_required() -> None:
    token = _token(status=SessionStatus.STEP_UP_REQUIRED)
    assert refresh.judge(token, now=NOW, successor=_no_successor) == Refusal.STEP_UP_REQUIRED


def test_step_up_does_not_hide_reuse(settings: Any) -> None:
    settings.IDP_REFRESH_TOKEN_GRACE_SECONDS = 10
    token = _token(status=SessionStatus.STEP_UP_REQUIRED, rotated=60)
    assert refresh.judge(token, now=NOW, successor=_no_successor) == Refusal.REUSE


@pytest.mark.parametrize(("bound", "proof", "expected"), [
    ("", None, None),
    ("", "any-key", None),
    ("the-key", None, Refusal.DPOP_PROOF_MISSING),
    ("the-key", "", Refusal.DPOP_PROOF_MISSING),
    ("the-key", "another-key", Refusal.DPOP_KEY_MISMATCH),
    ("the-key", "the-key", None),
])
def test_device_proof(bound: str, proof: str | None, expected: Refusal | None) -> None:
    assert refresh.judge_device_proof(DeviceSession(dpop_jkt=bound), proof) == expected


def test_code_judge(django_user_model: Any) -> None:
    active, inactive = django_user_model(is_active=True), django_user_model(is_active=False)
    later = NOW + dt.timedelta(minutes=1)
    assert code_exchange.judge(AuthorizationCode(user=active, expires_at=later), now=NOW) is True
    assert code_exchange.judge(AuthorizationCode(user=active, expires_at=later, used_at=NOW), now=NOW) is False
    assert code_exchange.judge(AuthorizationCode(user=active, expires_at=NOW), now=NOW) is None
    assert code_exchange.judge(AuthorizationCode(user=inactive, expires_at=later), now=NOW) is None


# --- against the database ----------------------------------------------------------------------
def _issue(session: DeviceSession) -> IssuedTokens:
    return IssuedTokens(access_token="an-access-token", expires_in=60, scope=session.scope, jti="a-jti")


def _state() -> list[Any]:
    """Every row a refresh could change (security events aside)."""
    return [
        list(DeviceSession.objects.order_by("pk").values()),
        list(RefreshToken.objects.order_by("pk").values()),
        list(AccessToken.objects.order_by("pk").values()),
    ]


def _rotate(raw: str, client: Any, *, proof_jkt: str | None = None) -> refresh.RefreshResult:
    now = dt.datetime.now(tz=dt.UTC)
    found = refresh.present(raw, client=client, now=now, request=None)
    if not isinstance(found, RefreshToken):
        assert isinstance(found, Refused), found
        return found
    return refresh.rotate(found, raw, now=now, issue=_issue, proof_jkt=proof_jkt, request=None)


def _refused_events(reason: Refusal) -> int:
    return SecurityEvent.objects.filter(event_type="oauth.refresh_refused", reason=reason).count()


@pytest.fixture
def family(tokens: dict[str, Any], mobile_client: Any) -> tuple[str, Any]:
    return tokens["refresh_token"], mobile_client.client


@pytest.mark.django_db
def test_rotated(family: tuple[str, Any]) -> None:
    raw, client = family
    result = _rotate(raw, client)
    assert isinstance(result, Rotated) and not result.retried
    successor = result.issued.refresh_token
    assert successor and successor != raw
    assert RefreshToken.objects.get(token_hash=token_digest(raw)).rotated_at is not None
    assert RefreshToken.objects.get(token_hash=token_digest(successor)).rotated_at is None
    assert SecurityEvent.objects.filter(event_type="oauth.token_refreshed", details__jti="a-jti").exists()


@pytest.mark.django_db
def test_grace_retry_gets_the_same_successor_and_stores_nothing(family: tuple[str, Any]) -> None:
    raw, client = family
    first = _rotate(raw, client)
    assert isinstance(first, Rotated)
    before = _state()
    again = _rotate(raw, client)
    assert isinstance(again, Rotated) and again.retried
    assert again.issued.refresh_token == first.issued.refresh_token
    after = _state()
    assert after[1] == before[1]  # no token row changed or was added
    assert SecurityEvent.objects.filter(event_type="oauth.refresh_retried").count() == 1


@pytest.mark.django_db
def test_reused_outside_the_grace_window_revokes_the_family(family: tuple[str, Any], settings: Any) -> None:
    settings.IDP_REFRESH_TOKEN_GRACE_SECONDS = 0
    settings.SESSIONS_DEVICE_BOUND_REFRESH_GRACE_SECONDS = 0
    raw, client = family
    assert isinstance(_rotate(raw, client), Rotated)
    assert _rotate(raw, client) == Refused(Refusal.REUSE)
    session = DeviceSession.objects.get()
    assert (session.status, session.status_reason) == (SessionStatus.REVOKED, "refresh_token_reuse")
    assert not RefreshToken.objects.filter(revoked_at__isnull=True).exists()
    assert _refused_events(Refusal.REUSE) == 1


@pytest.mark.django_db
def test_expired_changes_nothing(family: tuple[str, Any]) -> None:
    raw, client = family
    RefreshToken.objects.update(expires_at=dt.datetime.now(tz=dt.UTC) - dt.timedelta(seconds=1))
    before = _state()
    assert _rotate(raw, client) == Refused(Refusal.EXPIRED)
    assert _state() == before and _refused_events(Refusal.EXPIRED) == 1


@pytest.mark.django_db
def test_step_up_required_changes_nothing(family: tuple[str, Any]) -> None:
    raw, client = family
    DeviceSession.objects.update(status=SessionStatus.STEP_UP_REQUIRED)
    before = _state()
    assert _rotate(raw, client) == Refused(Refusal.STEP_UP_REQUIRED)
    assert _state() == before and _refused_events(Refusal.STEP_UP_REQUIRED) == 1


@pytest.mark.parametrize(("proof", "reason"), [(None, Refusal.DPOP_PROOF_MISSING),
                                               ("another-key", Refusal.DPOP_KEY_MISMATCH)])
@pytest.mark.django_db
def test_device_proof_missing_or_mismatched_changes_nothing(
    family: tuple[str, Any], proof: str | None, reason: Refusal
) -> None:
    raw, client = family
    DeviceSession.objects.update(dpop_jkt="the-family-key")
    before = _state()
    assert _rotate(raw, client, proof_jkt=proof) == Refused(reason)
    assert _state() == before and _refused_events(reason) == 1
    assert isinstance(_rotate(raw, client, proof_jkt="the-family-key"), Rotated)


@pytest.mark.django_db
def test_a_revoked_family_changes_nothing(family: tuple[str, Any]) -> None:
    raw, client = family
    DeviceSession.objects.update(status=SessionStatus.REVOKED)
    before = _state()
    assert _rotate(raw, client) == Refused(Refusal.REVOKED)
    assert _state() == before and _refused_events(Refusal.REVOKED) == 1


@pytest.mark.django_db
def test_an_unknown_token_is_not_found(family: tuple[str, Any]) -> None:
    _, client = family
    before = _state()
    assert refresh.present("no-such-token", client=client, now=NOW, request=None) is None
    assert _state() == before and not SecurityEvent.objects.filter(event_type="oauth.refresh_refused").exists()


@pytest.mark.django_db
def test_a_refused_issue_rolls_the_rotation_back(family: tuple[str, Any]) -> None:
    """A policy refusing inside ``issue`` leaves the presented token usable."""
    raw, client = family
    before = _state()

    def refusing(session: DeviceSession) -> IssuedTokens:
        raise RuntimeError("refused by a policy")

    found = refresh.present(raw, client=client, now=dt.datetime.now(tz=dt.UTC), request=None)
    assert isinstance(found, RefreshToken)
    with pytest.raises(RuntimeError):
        refresh.rotate(found, raw, now=dt.datetime.now(tz=dt.UTC), issue=refusing, request=None)
    assert _state() == before
    assert isinstance(_rotate(raw, client), Rotated)


@pytest.mark.django_db
def test_a_code_exchanged_twice_is_reuse(browser: Any, mobile_client: Any, pkce: Any) -> None:
    raw, _ = get_code(browser, mobile_client.client.client_id, pkce)
    client = mobile_client.client
    now = dt.datetime.now(tz=dt.UTC)
    code = code_exchange.find(raw, client, now=now)
    assert isinstance(code, AuthorizationCode)
    issue: Callable[[DeviceSession], IssuedTokens] = _issue  # no first refresh token: nothing to retry
    exchanged = code_exchange.exchange(code, raw, now=now, issue=issue, reissue=issue)
    assert isinstance(exchanged, code_exchange.Exchanged) and exchanged.session.is_active
    assert isinstance(code_exchange.exchange(code, raw, now=now, issue=issue, reissue=issue), code_exchange.CodeReused)
    used = code_exchange.find(raw, client, now=now)  # found, judged once the request's proofs passed
    assert isinstance(used, AuthorizationCode) and used.used_at is not None
    assert isinstance(code_exchange.exchange(used, raw, now=now, issue=issue, reissue=issue), code_exchange.CodeReused)
    assert DeviceSession.objects.get().status == SessionStatus.REVOKED
    assert SecurityEvent.objects.filter(event_type="oauth.code_reuse").count() == 2


@pytest.mark.django_db
def test_the_grant_refuses_the_token_of_an_inactive_user_and_changes_nothing(
    family: tuple[str, Any], django_user_model: Any
) -> None:
    """The user check of the grant's hooks (``authenticate_user``) still runs before any proof."""
    raw, client = family
    elsewhere(django_user_model).update(is_active=False)  # not through Django: the family lives on
    before = _state()
    response = form_post(HttpClient(), reverse("token"),
                         {"grant_type": "refresh_token", "refresh_token": raw, "client_id": client.client_id})
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_grant", "error_description": "The user of this refresh token is inactive."}
    assert _state() == before
