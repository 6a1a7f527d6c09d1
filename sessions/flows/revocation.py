"""The one path by which a token family or a credential ends, and the announcements it makes.

Every way a session ends (the user signing an app out on the account page, browser or
RP-initiated logout, ``/revoke``, an admin, a password or factor change, risk, device
health, revalidation, a revoked device, a deactivated or deleted user, a deactivated or deleted client,
code or refresh-token reuse, a received shared signal) calls :func:`revoke_session`; every
change to a credential calls :func:`credential_changed`. Each records exactly one security event and then *announces*
the change with a named signal, inside the same transaction:

- :data:`session_revoked` (``session``, ``reason``, ``initiator``, ``details``, ``now``);
- :data:`credential_change` (``user``, ``credential``, ``change``, ``initiator``, ``reason``,
  ``friendly_name``, ``now``).

Listeners subscribe to the announcement, never to the audit table: the Shared Signals
transmitter (``shared_signals.signals``) turns them into CAEP 1.0 session-revoked (§3.1) and
credential-change (§3.3) SETs, whose delivery rows commit or roll back with the change.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum
from typing import Any

from django.db import transaction
from django.dispatch import Signal
from django.http import HttpRequest
from django.utils import timezone

from core.cache import settle_first
from core.events import EventType, record

from ..models import AccessToken, DeviceSession, RefreshToken, SessionStatus

#: Sent once per session that this path revoked (not for one already revoked).
session_revoked = Signal()
#: Sent once per credential created, updated, revoked or deleted.
credential_change = Signal()


class Initiator(StrEnum):
    """Who caused the change: CAEP 1.0 §2 ``initiating_entity``."""

    ADMIN = "admin"
    USER = "user"
    POLICY = "policy"
    SYSTEM = "system"


class Reason(StrEnum):
    """The fixed reasons a session ends for (risk adds ``risk:<signals>``, shared signals
    ``ssf_<event>``)."""

    USER_SIGNED_OUT = "user_signed_out"  # "Sign out" of one app on the account page
    BROWSER_SIGNED_OUT = "browser_signed_out"  # a browser session signed out from another
    LOGOUT = "logout"  # browser or RP-initiated logout
    REVOKED_BY_CLIENT = "revoked_by_client"  # RFC 7009 /revoke
    REVOKED_BY_ADMIN = "revoked_by_admin"
    PASSWORD_CHANGED = "password_changed"
    PASSWORD_SET_BY_ADMIN = "password_set_by_admin"
    FACTORS_RESET = "factors_reset"
    USER_DEACTIVATED = "user_deactivated"
    USER_DELETED = "user_deleted"
    CLIENT_DEACTIVATED = "client_deactivated"
    CLIENT_DELETED = "client_deleted"
    DEVICE_REVOKED = "device_revoked"
    DEVICE_HEALTH_DENIED = "device_health_denied"
    ATTESTATION_STALE = "attestation_stale"
    REATTESTATION_REQUIRED = "reattestation_required"
    ATTESTATION_DEVICE_MISMATCH = "attestation_device_mismatch"
    ATTESTATION_FAILURES = "attestation_failures"
    CODE_REUSE = "authorization_code_reuse"
    CODE_RETRY_REFUSED = "code_retry_refused"  # a policy refused the retry of a lost exchange answer
    DEVICE_CODE_REUSE = "device_code_reuse"  # RFC 8628: a redeemed device code polled again, not as a retry
    REFRESH_REUSE = "refresh_token_reuse"


_INITIATORS: dict[str, Initiator] = {
    Reason.USER_SIGNED_OUT: Initiator.USER,
    Reason.BROWSER_SIGNED_OUT: Initiator.USER,
    Reason.LOGOUT: Initiator.USER,
    Reason.REVOKED_BY_CLIENT: Initiator.USER,
    Reason.PASSWORD_CHANGED: Initiator.USER,
    Reason.REVOKED_BY_ADMIN: Initiator.ADMIN,
    Reason.PASSWORD_SET_BY_ADMIN: Initiator.ADMIN,
    Reason.FACTORS_RESET: Initiator.ADMIN,
    Reason.USER_DEACTIVATED: Initiator.ADMIN,
    Reason.USER_DELETED: Initiator.ADMIN,
    Reason.CLIENT_DEACTIVATED: Initiator.ADMIN,
    Reason.CLIENT_DELETED: Initiator.ADMIN,
}


def initiator_for(reason: str) -> Initiator:
    """Who a revocation for ``reason`` is attributed to (policy unless known otherwise)."""
    if reason in _INITIATORS:
        return _INITIATORS[reason]
    return Initiator.SYSTEM if reason.startswith("ssf_") else Initiator.POLICY


class CredentialType(StrEnum):
    """CAEP 1.0 §3.3.1 ``credential_type`` values for the credentials Vigil holds."""

    PASSWORD = "password"
    PASSKEY_PLATFORM = "fido2-platform"
    PASSKEY_ROAMING = "fido2-roaming"
    AUTHENTICATOR_APP = "app"


class CredentialChange(StrEnum):
    """CAEP 1.0 §3.3.1 ``change_type``."""

    CREATE = "create"
    REVOKE = "revoke"
    UPDATE = "update"
    DELETE = "delete"


def revoke_session(
    session: DeviceSession,
    reason: str,
    *,
    now: datetime | None = None,
    initiator: Initiator | None = None,
    request: HttpRequest | None = None,
    **details: Any,
) -> bool:
    """Revoke a family (the session, its refresh and access tokens), record ``session.revoked``
    and announce :data:`session_revoked`. Idempotent: False when it was already revoked."""
    settle_first()  # a request's pending DPoP jti mark first: nothing is revoked for a replayed proof
    moment = now or timezone.now()
    who = initiator or initiator_for(reason)
    with transaction.atomic():
        # Lock order everywhere: the session row first, then its tokens.
        DeviceSession.objects.select_for_update().filter(pk=session.pk).first()
        changed = DeviceSession.objects.filter(pk=session.pk).exclude(status=SessionStatus.REVOKED).update(
            status=SessionStatus.REVOKED, status_reason=reason[:80], revoked_at=moment
        )
        RefreshToken.objects.filter(session=session, revoked_at__isnull=True).update(revoked_at=moment)
        AccessToken.objects.filter(session=session, revoked_at__isnull=True).update(revoked_at=moment)
        session.status, session.status_reason, session.revoked_at = SessionStatus.REVOKED, reason[:80], moment
        if changed:
            record(EventType.SESSION_REVOKED, reason=reason, user=session.user, client_id=session.client.client_id,
                   session_id=session.sid, request=request, initiator=str(who), **details)
            session_revoked.send(sender=DeviceSession, session=session, reason=str(reason), initiator=who,
                                 details=details, now=moment)
    return bool(changed)


def revoke_access_token(token: AccessToken, *, now: datetime | None = None) -> bool:
    """One access token, not its family (RFC 7009 §2.1 allows it): its ``jti`` is refused by
    introspection and our resource endpoints from now on. The caller records the decision
    (``oauth.revocation``: the client's ``/revoke``, or an admin). False when already revoked."""
    moment = now or timezone.now()
    changed = AccessToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=moment)
    if changed:
        token.revoked_at = moment
    return bool(changed)


def revoke_client_access_tokens(client: Any, reason: str, *, now: datetime | None = None) -> int:
    """Every live access token issued to ``client``, each revoked and recorded
    (``oauth.revocation``, ``initiator``): those outside its families too. How many."""
    moment = now or timezone.now()
    who = initiator_for(reason)
    live = AccessToken.objects.filter(client=client, revoked_at__isnull=True, expires_at__gt=moment)
    revoked = 0
    for token in live.select_related("user"):
        if revoke_access_token(token, now=moment):
            revoked += 1
            record(EventType.OAUTH_REVOCATION, reason="access_token", client_id=client.client_id, user=token.user,
                   jti=token.jti, initiator=str(who), cause=str(reason))
    return revoked


def revoke_sessions(
    sessions: Iterable[DeviceSession], reason: str, *, now: datetime | None = None, **options: Any
) -> int:
    """:func:`revoke_session` for each; how many were revoked now."""
    return sum(int(revoke_session(s, reason, now=now, **options)) for s in sessions)


def live_sessions(**lookup: Any) -> Any:
    """The families matching ``lookup`` not revoked yet (active or awaiting step-up), ready to revoke."""
    return DeviceSession.objects.filter(**lookup).exclude(status=SessionStatus.REVOKED).select_related(
        "client", "user", "device"
    )


def live_sessions_of(user: Any) -> Any:
    """The user's families not revoked yet."""
    return live_sessions(user=user)


def revoke_user_sessions(user: Any, reason: str, **options: Any) -> int:
    """Every live family of ``user`` (password change, factor reset, deactivation)."""
    return revoke_sessions(live_sessions_of(user), reason, **options)


def credential_changed(
    user: Any,
    event_type: EventType,
    *,
    credential: CredentialType,
    change: CredentialChange,
    initiator: Initiator = Initiator.USER,
    request: HttpRequest | None = None,
    reason: str = "",
    friendly_name: str = "",
    now: datetime | None = None,
    **details: Any,
) -> None:
    """Record ``event_type`` for a credential change of ``user`` and announce
    :data:`credential_change` (CAEP 1.0 §3.3)."""
    moment = now or timezone.now()
    with transaction.atomic():
        record(event_type, user=user, request=request, reason=reason, credential_type=str(credential),
               change_type=str(change), initiator=str(initiator), **details)
        credential_change.send(sender=type(user), user=user, credential=credential, change=change,
                               initiator=initiator, reason=reason or event_type, friendly_name=friendly_name,
                               now=moment)
