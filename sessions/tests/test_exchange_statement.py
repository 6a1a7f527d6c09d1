"""Issue 19: the common code exchange is one data-modifying statement on PostgreSQL
(``sessions/flows/exchange_statement.py``): claim, family, tokens and event commit together or
not at all; a code claimed meanwhile is reuse with nothing written; the setting off takes the
transactional path with the same rows."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from django.db import connection
from django.test import Client as HttpClient
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from core import keys
from core.events import EventType
from core.models import SecurityEvent
from idp.tests.conftest import exchange, get_code, make_pkce
from sessions.flows import code_exchange
from sessions.flows.tokens import IssuedTokens, issue_access_token
from sessions.models import AccessToken, AuthorizationCode, DeviceSession, RefreshToken

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


@pytest.fixture(autouse=True)
def _postgres_only() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("service-missing: the one-statement exchange is PostgreSQL's (DATABASE_URL=postgres://...)")


def rows() -> tuple[int, int, int, Counter[str]]:
    return (DeviceSession.objects.count(), RefreshToken.objects.count(), AccessToken.objects.count(),
            Counter(SecurityEvent.objects.values_list("event_type", flat=True)))


def test_an_exchange_is_three_statements_one_of_them_claim_family_tokens_and_event(browser: Any,
                                                                                   mobile_client: Any) -> None:
    keys.ensure_keys()
    client_id = mobile_client.client.client_id
    pkce = make_pkce()
    assert exchange(HttpClient(), get_code(browser, client_id, pkce)[0], pkce, client_id).status_code == 200
    pkce = make_pkce()
    code, _ = get_code(browser, client_id, pkce)
    sizes: dict[str, int] = {}

    def keep(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        sizes[sql] = len(params or ())
        return execute(sql, params, many, context)

    with CaptureQueriesContext(connection) as captured, connection.execute_wrapper(keep):
        response = exchange(HttpClient(), code, pkce, client_id)
    assert response.status_code == 200, response.content
    sql = [q["sql"] for q in captured.captured_queries if "SAVEPOINT" not in q["sql"]]
    assert len(sql) == 3 and sql[2].startswith("WITH c AS (UPDATE"), "\n".join(sql)
    # Within psycopg's conversion cache (see test_device_write_in_rotation.py): parsed once per process.
    from psycopg import _queries

    (statement, params), = [(q, n) for q, n in sizes.items() if q.startswith("WITH c AS")]
    assert params <= _queries.MAX_CACHED_STATEMENT_PARAMS and len(statement.encode()) <= _queries.MAX_CACHED_STATEMENT_LENGTH
    for table in ("sessions_device_session", "sessions_refresh_token", "sessions_access_token", "idp_security_event"):
        assert f'INSERT INTO "{table}"' in sql[2]
    session = DeviceSession.objects.order_by("-pk").first()
    assert session is not None and session.authorization_code_id is not None
    assert AuthorizationCode.objects.get(pk=session.authorization_code_id).used_at is not None
    assert RefreshToken.objects.filter(session=session).count() == 1
    assert AccessToken.objects.filter(session=session).count() == 1
    assert SecurityEvent.objects.filter(session_id=session.sid, event_type=EventType.OAUTH_TOKEN_ISSUED).count() == 1


def _issuer(session: DeviceSession) -> IssuedTokens:
    jwt, jti, expires_in = issue_access_token(client=session.client, user=session.user, scope=session.scope,
                                              audience=[], session=session, now=timezone.now())
    return IssuedTokens(access_token=jwt, expires_in=expires_in, scope=session.scope, jti=jti)


def test_a_code_claimed_after_the_look_up_is_reuse_and_the_statement_writes_nothing(browser: Any,
                                                                                    mobile_client: Any) -> None:
    keys.ensure_keys()
    client = mobile_client.client
    pkce = make_pkce()
    raw, _ = get_code(browser, client.client_id, pkce)
    now = timezone.now()
    first = code_exchange.find(raw, client, now=now)
    stale = code_exchange.find(raw, client, now=now)
    assert isinstance(first, AuthorizationCode) and isinstance(stale, AuthorizationCode)
    won = code_exchange.exchange(first, raw, now=now, issue=_issuer, reissue=_issuer)
    assert isinstance(won, code_exchange.Exchanged)
    before = rows()
    lost = code_exchange.exchange(stale, raw, now=now, issue=_issuer, reissue=_issuer)  # no first refresh token
    assert isinstance(lost, code_exchange.CodeReused)
    after = rows()
    assert after[:3] == before[:3]  # no second family, no token
    assert after[3] - before[3] == Counter({EventType.OAUTH_CODE_REUSE: 1, EventType.SESSION_REVOKED: 1})
    won.session.refresh_from_db()
    assert won.session.status == "revoked"  # RFC 6749 §4.1.2: what the first use issued is revoked


def test_the_transactional_path_gives_the_same_rows(browser: Any, mobile_client: Any, settings: Any) -> None:
    keys.ensure_keys()
    client_id = mobile_client.client.client_id
    added = []
    for one_statement in (True, False):
        settings.SESSIONS_ROTATE_IN_ONE_STATEMENT = one_statement
        pkce = make_pkce()
        code, _ = get_code(browser, client_id, pkce)
        before = rows()
        with CaptureQueriesContext(connection) as captured:
            assert exchange(HttpClient(), code, pkce, client_id).status_code == 200
        assert any(q["sql"].startswith("WITH") for q in captured.captured_queries) is one_statement
        after = rows()
        added.append((tuple(a - b for a, b in zip(after[:3], before[:3], strict=True)), after[3] - before[3]))
    assert added[0] == added[1] == ((1, 1, 1), Counter({EventType.OAUTH_TOKEN_ISSUED: 1})), added
