"""Introspecting one of our JWT access tokens in one statement (RFC 7662 §2, issue 19).

The JWT's signature, issuer and ``aud`` are checked in memory first (``core.jwt_tokens``,
keys from the config cache); what only the database knows (revoked? its family ended? its
user or client deactivated?) and the security event of the answer are then one PostgreSQL statement:
a data-modifying CTE writes the event with the outcome computed from the row it reads, so
the look-up and its record cannot disagree. Who may see the token (RFC 7662 §4: its own
client, or the resource server of its audience) and what is active are the same rules as
``idp.oauth.endpoints`` applies on the general path:

* ``denied`` / ``not_token_audience``: the row exists and the client may not see it
  (details: the token's client and type, as ``IntrospectionEndpoint`` records them);
* ``success`` / ``active``: not revoked, not expired at ``now``, its family active, its user
  active, its client and its family's client active (``AccessToken.is_active``);
* ``info`` / ``inactive``: anything else, a token without a row included.

Other databases (SQLite in development) and other tokens take the general path.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.contrib.auth import get_user_model
from django.db import connections, router
from django.db.models import Field

from core import events, jwt_tokens, request_context
from core.events import EventType, Outcome
from core.models import SecurityEvent
from core.sql import JoinedQuery, Part
from sessions.models import AccessToken, DeviceSession, SessionStatus

if TYPE_CHECKING:
    from clients.models import Client


def _parts() -> list[Part]:
    from clients.models import Client  # resolvable once apps are loaded

    return [
        Part(AccessToken, "a"),
        Part(Client, "c", on="c.id = a.client_id", parent="a", attr="client"),
        Part(DeviceSession, "s", on="s.id = a.session_id", parent="a", attr="session", outer=True),
        Part(get_user_model(), "u", on="u.id = a.user_id", parent="a", attr="user", outer=True),
        # The family's client (an exchanged token's is its subject's): only whether it is active.
        Part(Client, "sc", on="sc.id = s.client_id", parent="s", attr="client", outer=True,
             only=("client_id", "is_active")),
    ]


_LOOKUP = JoinedQuery(_parts, where="a.jti = %s")

# Parameters, in order: the look-up's jti; whether the client serves the token's audience, the
# client's pk, ``now``, the active session status; then the event's fields, as ``sql.insert``
# prepares them, except those computed from the verdict.
_STATEMENT = """
WITH found ({columns}) AS ({lookup}),
verdict AS (
    SELECT CASE
        WHEN f.a_id IS NULL THEN '{info}'
        WHEN NOT (%s OR f.a_client_id = %s) THEN '{denied}'
        WHEN f.a_revoked_at IS NULL AND f.a_expires_at > %s::timestamptz
             AND (f.a_session_id IS NULL OR (f.s_status = %s AND f.sc_is_active))
             AND (f.a_user_id IS NULL OR f.u_is_active) AND f.c_is_active THEN '{success}'
        ELSE '{info}' END AS outcome,
        f.c_client_id AS token_client_id
    FROM (SELECT 1) AS one LEFT JOIN found AS f ON TRUE
),
logged AS (
    INSERT INTO {events} ({event_columns}) SELECT {event_values} FROM verdict AS v
    RETURNING id, outcome, reason, details
)
SELECT logged.id, logged.outcome, logged.reason, logged.details, found.* FROM logged LEFT JOIN found ON TRUE
"""
_COMPUTED = {
    "outcome": "v.outcome",
    "reason": f"CASE v.outcome WHEN '{Outcome.SUCCESS}' THEN 'active' "
              f"WHEN '{Outcome.DENIED}' THEN 'not_token_audience' ELSE 'inactive' END",
    "details": f"CASE v.outcome WHEN '{Outcome.DENIED}' THEN jsonb_build_object("
               "'token_client_id', v.token_client_id, 'token_type', 'access_token') ELSE '{}'::jsonb END",
}
_statements: dict[str, str] = {}


def applies(token_string: str, client: Client) -> dict[str, Any] | None:
    """The verified claims when this path answers: PostgreSQL, a confidential client and one
    of our JWT access tokens (signature, issuer and ``typ`` checked; expiry is the row's)."""
    if client.is_public or connections[router.db_for_write(AccessToken)].vendor != "postgresql":
        return None
    try:
        return jwt_tokens.verify(token_string, typ="at+jwt", check_exp=False)
    except jwt_tokens.TokenInvalid:
        return None


def look_up_and_record(
    claims: dict[str, Any], client: Client, serves_audience: bool, request: Any, now: datetime
) -> tuple[AccessToken | None, Outcome]:
    """The token's row (with client, family and user) and the outcome recorded for it."""
    using = router.db_for_write(SecurityEvent)
    connection = connections[using]
    event = events.build(EventType.OAUTH_INTROSPECTION, client_id=client.client_id, request=request)
    event.created_at = now
    params: list[Any] = [str(claims.get("jti")), serves_audience, client.pk, now, SessionStatus.ACTIVE]
    params += [f.get_db_prep_save(f.pre_save(event, True), connection) for f in _event_fields()
               if f.name not in _COMPUTED]
    with connection.cursor() as cursor:
        cursor.execute(_statement(using), params)
        row = cursor.fetchone()
    event.pk, event.outcome, event.reason = row[0], Outcome(row[1]), row[2]
    event.details = json.loads(row[3]) if isinstance(row[3], str) else row[3]
    request_context.note_decision(event.event_type, event.outcome, event.reason, event.client_id)  # the real one
    event._state.adding, event._state.db = False, using
    events.log_on_commit([event])  # the log line, as every event has, once committed
    found = _LOOKUP.instances(row[4:], using=using) if row[4] is not None else None
    access = found["a"] if found is not None else None
    return (access if isinstance(access, AccessToken) else None), Outcome(event.outcome)


def _event_fields() -> list[Field[Any, Any]]:
    meta = SecurityEvent._meta
    return [f for f in meta.concrete_fields if f is not meta.auto_field]


def _statement(using: str) -> str:
    sql = _statements.get(using)
    if sql is None:
        quote = connections[using].ops.quote_name
        fields = _event_fields()
        sql = _statements[using] = _STATEMENT.format(
            columns=", ".join(_LOOKUP.columns(using)), lookup=_LOOKUP.sql(using),
            events=quote(SecurityEvent._meta.db_table),
            event_columns=", ".join(quote(str(f.column)) for f in fields),
            event_values=", ".join(_COMPUTED.get(f.name, "%s") for f in fields),
            info=Outcome.INFO, denied=Outcome.DENIED, success=Outcome.SUCCESS,
        )
    return sql
