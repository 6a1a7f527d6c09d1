"""Issue 19: the common refresh rotates in one data-modifying statement on PostgreSQL
(``sessions/flows/rotation_statement.py``); anything unusual takes the transactional path with
the same outcome. Also: budgets, a policy that writes, a rotation racing the look-up, a
family revoked meanwhile, the setting off."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from core import keys, policy
from core.crypto import token_digest
from core.events import EventType
from core.models import SecurityEvent
from sessions.flows import refresh
from sessions.flows.tokens import IssuedTokens
from sessions.models import AccessToken, DeviceSession, RefreshToken, SessionStatus

from .test_device_bound_tokens import App, ios_app, iphone  # noqa: F401 - fixtures

pytestmark = [pytest.mark.postgres, pytest.mark.django_db, pytest.mark.usefixtures("allow_test_roots")]


@pytest.fixture(autouse=True)
def _postgres_only() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("service-missing: the one-statement rotation is PostgreSQL's (DATABASE_URL=postgres://...)")


def refresh_sql(app: App) -> list[str]:
    keys.ensure_keys()
    assert app.refresh().status_code == 200  # warm copies
    with CaptureQueriesContext(connection) as captured:
        response = app.refresh()
    assert response.status_code == 200, response.content
    return [q["sql"] for q in captured.captured_queries if "SAVEPOINT" not in q["sql"]]


def family(session: DeviceSession) -> tuple[Any, ...]:
    session.refresh_from_db()
    return (
        session.status, session.last_refresh_at,
        sorted(RefreshToken.objects.filter(session=session).values_list("token_hash", "rotated_at", "revoked_at")),
        AccessToken.objects.filter(session=session).count(),
        Counter(SecurityEvent.objects.values_list("event_type", flat=True)),  # the test's own database
    )


def test_an_attested_refresh_is_two_statements_the_rotation_carrying_the_counter(iphone: App) -> None:
    iphone.login()
    statements = refresh_sql(iphone)
    assert len(statements) == 2, "\n".join(statements)
    lookup, rotation = statements
    assert lookup.startswith("SELECT")
    assert rotation.startswith('WITH d AS (UPDATE "attestation_device" SET counter') and "FOR UPDATE" in rotation
    assert "AND EXISTS (SELECT 1 FROM d) FOR UPDATE" in rotation  # the family's lock waits for the device's write
    for table in ("sessions_refresh_token", "sessions_access_token", "idp_security_event"):
        assert f'INSERT INTO "{table}"' in rotation


def test_the_transactional_path_gives_the_same_rows(iphone: App, settings: Any) -> None:
    iphone.login()
    session = DeviceSession.objects.get()
    assert iphone.refresh().status_code == 200
    one = family(session)
    settings.SESSIONS_ROTATE_IN_ONE_STATEMENT = False
    with CaptureQueriesContext(connection) as captured:
        assert iphone.refresh().status_code == 200
    assert not any(q["sql"].startswith("WITH") for q in captured.captured_queries)
    two = family(session)
    # Each refresh: one more token rotated, one successor, one access token, the same events.
    assert len(two[2]) == len(one[2]) + 1 and two[3] == one[3] + 1
    assert sum(1 for _, rotated, _ in two[2] if rotated is None) == 1
    added = two[4] - one[4]
    assert added == Counter({EventType.OAUTH_TOKEN_REFRESHED: 1, EventType.ATTESTATION_ASSERT: 1}), added


def test_a_policy_that_writes_takes_the_transactional_path_once(iphone: App) -> None:
    User = get_user_model()
    calls: list[int] = []

    def writes(context: policy.TokenContext) -> None:
        calls.append(1)
        User.objects.filter(pk=context.user.pk).update(last_login=timezone.now())

    iphone.login()
    assert iphone.refresh().status_code == 200  # warm: the health snapshot, risk profile, copies
    session = DeviceSession.objects.get()
    User.objects.filter(pk=session.user_id).update(last_login=None)
    before = family(session)
    policy.register_token_policy(writes)
    try:
        with CaptureQueriesContext(connection) as captured:
            assert iphone.refresh().status_code == 200
    finally:
        policy._token_policies.remove(writes)
    sql = [q["sql"] for q in captured.captured_queries]
    assert not any(s.startswith("WITH") for s in sql)  # (the refused attempt is logged too, not run)
    assert User.objects.filter(pk=session.user_id, last_login__isnull=False).exists()
    assert len(calls) == 2  # tried in one statement (refused before it ran), then in the transaction
    after = family(session)
    assert after[4] - before[4] == Counter({EventType.OAUTH_TOKEN_REFRESHED: 1, EventType.ATTESTATION_ASSERT: 1})
    assert sum(1 for _, rotated, _ in after[2] if rotated is None) == 1


def _issuer(session: DeviceSession) -> IssuedTokens:
    from sessions.flows.tokens import issue_access_token

    jwt, jti, expires_in = issue_access_token(client=session.client, user=session.user, scope=session.scope,
                                              audience=[], session=session, now=timezone.now())
    return IssuedTokens(access_token=jwt, expires_in=expires_in, scope=session.scope, jti=jti)


def test_a_rotation_between_look_up_and_statement_is_judged_under_the_lock(iphone: App) -> None:
    """Another request rotated the token after this one read it: the statement writes nothing,
    and the transactional path finds a grace retry (the same successor, nothing new stored)."""
    iphone.login()
    raw = iphone.refresh_token
    client = DeviceSession.objects.get().client
    stale = refresh.find_refresh_token(raw, client=client)
    other = refresh.find_refresh_token(raw, client=client)
    assert stale is not None and other is not None
    now = timezone.now()
    first = refresh.rotate(other, raw, now=now, issue=_issuer, proof_jkt=iphone.jkt())
    assert isinstance(first, refresh.Rotated) and not first.retried
    tokens = RefreshToken.objects.count()
    second = refresh.rotate(stale, raw, now=now, issue=_issuer, proof_jkt=iphone.jkt())
    assert isinstance(second, refresh.Rotated) and second.retried
    assert second.issued.refresh_token == first.issued.refresh_token
    assert RefreshToken.objects.count() == tokens


def test_a_family_revoked_after_the_look_up_gets_nothing(iphone: App) -> None:
    iphone.login()
    raw = iphone.refresh_token
    session = DeviceSession.objects.get()
    presented = refresh.find_refresh_token(raw, client=session.client)
    assert presented is not None
    DeviceSession.objects.filter(pk=session.pk).update(status=SessionStatus.REVOKED)
    before = family(session)
    result = refresh.rotate(presented, raw, now=timezone.now(), issue=_issuer, proof_jkt=iphone.jkt())
    assert result == refresh.Refused(refresh.Refusal.REVOKED)
    after = family(session)
    assert after[:4] == before[:4]  # no token, no touch: only the refusal's event
    assert after[4] - before[4] == Counter({"oauth.refresh_refused": 1})
    assert not RefreshToken.objects.filter(token_hash=token_digest(refresh.successor_token(raw))).exists()
