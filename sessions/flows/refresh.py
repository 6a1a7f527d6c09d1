"""The refresh-token lifecycle, top to bottom (RFC 6749 §6, RFC 9700 §4.14.2).

1. **find** the presented token with its family, user and device (one indexed query);
2. **judge** it (pure, with an injected clock): family revoked or awaiting step-up, token
   revoked, rotated and not a grace retry (reuse), expired; and the device proof: a family
   bound to a DPoP key (RFC 9449 §5) needs a proof of that key;
3. **rotate** under the family's row lock, issuing in the same transaction, judging again
   what may have changed since the look-up;
4. **revoke** the family on reuse (RFC 9700 §4.14.2) and **record** every outcome.

Each step returns one typed result: :class:`Rotated` or :class:`Refused` (with its
:class:`Refusal`). A refusal changes nothing but the revocation it calls for and its event.

A token's successor is derived from it (``core.crypto.successor_token``): a retry of the
immediate predecessor inside the grace window, while that successor is unused, gets the same
successor again (a response lost on a mobile network) and nothing new is stored, so a family
never holds more than one live refresh token. The rotation, its successor, the access token
and the refresh's security events commit in one transaction; the database failing anywhere
on the way leaves the token as it was (``core.outage`` answers 503 ``temporarily_unavailable``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from functools import cache
from hmac import compare_digest
from typing import Any

from django.contrib.auth import get_user_model
from django.http import HttpRequest

from clients.models import Client
from core import config_cache, events
from core.crypto import successor_candidates, successor_token, token_digest
from core.deferred_write import DeferredWrite
from core.events import EventType
from core.sql import JoinedQuery, Part, Statement

from ..models import DeviceSession, RefreshToken, SessionStatus
from . import rotation_statement
from .grace import within_grace
from .revocation import Reason, revoke_session
from .tokens import IssuedTokens, issue_refresh_token, place_of


class Refusal(StrEnum):
    """Why a presented refresh token gets no tokens (``oauth.refresh_refused`` reasons)."""

    REUSE = "reuse"
    REVOKED = "revoked"
    EXPIRED = "expired"
    STEP_UP_REQUIRED = "step_up_required"
    CLIENT_INACTIVE = "client_inactive"  # deactivated behind the signal (docs/device-sessions.md)
    DPOP_PROOF_MISSING = "dpop_proof_missing"
    DPOP_KEY_MISMATCH = "dpop_key_mismatch"
    DEVICE_CHANGED = "device_changed"  # an upgrade raced another one: the session has its device already
    UNATTESTED_RATE_LIMITED = "unattested_rate_limited"  # docs/unattested-devices.md


@dataclass(frozen=True)
class Rotated:
    """A refresh that went through: the family, what was issued (with the family's one live
    refresh token), and whether this was a grace retry (the same successor again)."""

    session: DeviceSession
    issued: IssuedTokens
    retried: bool = False


@dataclass(frozen=True)
class Refused:
    """A refresh refused, acted on (reuse revoked the family) and recorded."""

    reason: Refusal


RefreshResult = Rotated | Refused
#: Issues the access token (and ID token) of a rotated family, inside the rotation's transaction.
Issuer = Callable[[DeviceSession], IssuedTokens]


# --- find ------------------------------------------------------------------------------------
#: One-to-one rows of the device that higher apps (device_health, risk) join into the refresh
#: token's query from their ``AppConfig.ready``, so their policies decide without a query of
#: their own. sessions does not import them: they register here (docs/architecture.md).
_device_state_parts: list[Callable[[], Part]] = []


def load_with_device(part: Callable[[], Part]) -> None:
    """Join ``part()`` (a row keyed by ``d.id``, the device) into every refresh-token lookup."""
    if part not in _device_state_parts:
        _device_state_parts.append(part)


def _refresh_token_parts() -> list[Part]:
    # Read when the query is first built, after every app is ready.
    from attestation.models import Device

    return [
        Part(RefreshToken, "t"),
        Part(DeviceSession, "s", on="s.id = t.session_id", parent="t", attr="session"),
        Part(get_user_model(), "u", on="u.id = s.user_id", parent="s", attr="user"),
        # Whether the family's client is active, as the database says now (the authenticated
        # client may be a per-process copy from before a raw SQL update: core.config_cache).
        Part(Client, "c", on="c.id = s.client_id", parent="s", attr="client", only=("client_id", "is_active")),
        Part(Device, "d", on="d.id = s.device_id", parent="s", attr="device", outer=True),
        *(part() for part in _device_state_parts),
    ]


_REFRESH_TOKEN_QUERY = JoinedQuery(_refresh_token_parts, where="t.token_hash = %s")


def find_refresh_token(raw: str, client: Client | None = None) -> RefreshToken | None:
    """The token of that raw value with its session, user and device: one indexed query,
    its SQL built once. Given the already authenticated ``client``, its row is read only for
    ``is_active``: the session gets that client when it is the session's own and still
    active (anything else is refused by the caller; an inactive one keeps the row read, which
    says so), and the device its registered app from the config cache."""
    if not isinstance(raw, str) or not raw or len(raw) > 512:
        return None
    found = _REFRESH_TOKEN_QUERY.first([token_digest(raw)])
    if found is None:
        return None
    token, session = found["t"], found["s"]
    assert isinstance(token, RefreshToken) and isinstance(session, DeviceSession)
    if client is not None and session.client_id == client.pk and session.client.is_active:
        session.client = client
    if session.device is not None:
        session.device.app = registered_app(session.device.app_id)
    return token


def registered_app(app_id: int) -> Any:
    """A registered app with its client, from the config cache."""
    # Imported here: attestation.models imports sessions.models (read at the first call).
    from attestation.models import RegisteredApp

    return config_cache.cached(
        ("registered-app", app_id), lambda: RegisteredApp.objects.select_related("client").get(pk=app_id)
    )


# --- judge (pure) ----------------------------------------------------------------------------
# The retry window (``within_grace``) is the code exchange's too: ``grace.py``.
def judge(token: RefreshToken, *, now: datetime, successor: Callable[[], str | None]) -> Refusal | None:
    """Whether ``token`` may be rotated now; None: yes. ``successor`` answers, only when asked
    (a rotated token inside the grace window), the live unused successor a retry gets back.

    A revoked token of a family that lives on was left only by the retired grace retry:
    presenting it is reuse (issue 12), as is presenting a rotated token that is no retry.
    A family whose client is inactive (deactivated by a ``QuerySet.update``, which skips the
    signal that ends its families) is refused before reuse is judged: nothing changes, as for
    a deactivated user's (docs/device-sessions.md)."""
    status = token.session.status
    if status == SessionStatus.REVOKED:
        return Refusal.REVOKED
    if not token.session.client.is_active:  # nothing more is judged: nothing changes
        return Refusal.CLIENT_INACTIVE
    if token.revoked_at is not None:
        return Refusal.REUSE
    if token.rotated_at is not None and (not within_grace(token, now) or successor() is None):
        return Refusal.REUSE
    if token.is_expired(now):
        return Refusal.EXPIRED
    if status == SessionStatus.STEP_UP_REQUIRED:
        return Refusal.STEP_UP_REQUIRED
    return None


def judge_device_proof(session: DeviceSession, proof_jkt: str | None) -> Refusal | None:
    """RFC 9449 §5: a family bound to a DPoP key is refreshed only with a proof of that key.
    (The proof itself is verified at the token endpoint, ``idp.oauth.dpop_binding``.)"""
    if not session.dpop_jkt:
        return None
    if not proof_jkt:
        return Refusal.DPOP_PROOF_MISSING
    return None if compare_digest(proof_jkt, session.dpop_jkt) else Refusal.DPOP_KEY_MISMATCH


def retry_successor(token: RefreshToken, raw: str, now: datetime) -> str | None:
    """The successor to hand out again when the rotated ``token`` (value ``raw``) is presented
    once more: only inside the grace window and only while that successor is live and unused
    (once it was used, the chain moved on and this is reuse). ``None``: this is reuse. One
    indexed query."""
    if not within_grace(token, now):
        return None
    candidates = {token_digest(value): value for value in successor_candidates(raw)}
    successor = (
        RefreshToken.objects.filter(session_id=token.session_id, token_hash__in=list(candidates))
        .values_list("token_hash", "rotated_at", "revoked_at", "expires_at")
        .first()
    )
    if successor is None:  # e.g. rotated before successors were derived: no retry to offer
        return None
    stored_hash, rotated_at, revoked_at, expires_at = successor
    if rotated_at is not None or revoked_at is not None or expires_at <= now:
        return None
    return candidates[bytes(stored_hash)]


def present(raw: str, *, client: Client, now: datetime, request: HttpRequest | None) -> RefreshToken | Refused | None:
    """Find and judge a presented token: the token when it may be rotated, None when there is
    no such token, else the refusal (acted on and recorded)."""
    token = find_refresh_token(raw, client=client)
    if token is None:
        return None
    refusal = judge(token, now=now, successor=lambda: retry_successor(token, raw, now))
    # Awaiting step-up is decided under the lock (``rotate``), after the device's proofs.
    if refusal is None or refusal == Refusal.STEP_UP_REQUIRED:
        return token
    return refuse(token, refusal, now=now, request=request)


# --- rotate under the lock -------------------------------------------------------------------
class _Refusing(Exception):
    def __init__(self, reason: Refusal):
        super().__init__(reason)
        self.reason = reason


_TOUCH_ACTIVE_SESSION = Statement(
    DeviceSession,
    "UPDATE {table} SET last_refresh_at = %s, last_ip = %s, last_place = %s WHERE id = %s AND status = %s",
    ["last_refresh_at", "last_ip", "last_place", "id", "status"],
)
_MARK_ROTATED = Statement(
    RefreshToken,
    "UPDATE {table} SET rotated_at = %s"
    " WHERE id = %s AND rotated_at IS NULL AND revoked_at IS NULL AND expires_at > %s",
    ["rotated_at", "id", "expires_at"],
)


def rotate(
    presented: RefreshToken,
    raw: str,
    *,
    now: datetime,
    issue: Issuer,
    proof_jkt: str | None = None,
    ip: str | None = None,
    request: HttpRequest | None = None,
    upgraded_from: Any = None,
    device_write: DeferredWrite | None = None,
) -> RefreshResult:
    """Rotate ``presented`` (whose value is ``raw``) and issue, in one transaction that also
    writes the refresh's events (and those of the checks before it), so the answer is decided
    once everything is committed. A refusal rolls all of it back, then is acted on.
    ``upgraded_from``: the unattested device this refresh moves the family away from, to the
    attested ``presented.session.device`` (docs/unattested-devices.md), in the same transaction.
    ``device_write``: the device's write its proof deferred
    (``rotation_statement.carries_device_write``): the one statement carries it, else it is
    done alone before anything else here, so it stands whatever the refresh becomes, as when
    the proof wrote it (docs/attestation.md §3)."""
    refusal = judge_device_proof(presented.session, proof_jkt)
    if refusal is None and upgraded_from is None and rotation_statement.applicable(presented):
        done = _in_one_statement(presented, raw, now=now, issue=issue, ip=ip, request=request,
                                 device_write=device_write)
        if done is not None:
            return done
    if device_write is not None:
        device_write.settle()
    if refusal is not None:
        return refuse(presented, refusal, now=now, request=request)
    try:
        with events.atomic_with_events() as written:
            session, successor, retried = _rotate_locked(presented, raw, now=now, ip=ip)
            if upgraded_from is not None:
                _rebind(session, upgraded_from, written, request)
            issued = issue(session)
            issued.refresh_token = successor
            written.record(
                # A retry is its own event: the same successor handed out again (issue 12).
                EventType.OAUTH_REFRESH_RETRIED if retried else EventType.OAUTH_TOKEN_REFRESHED,
                user=session.user,
                client_id=session.client.client_id,
                session_id=session.sid,
                request=request,
                jti=issued.jti,
            )
    except _Refusing as refusing:
        return refuse(presented, refusing.reason, now=now, request=request)
    return Rotated(session, issued, retried)


def _in_one_statement(
    presented: RefreshToken, raw: str, *, now: datetime, issue: Issuer, ip: str | None,
    request: HttpRequest | None, device_write: DeferredWrite | None,
) -> Rotated | None:
    """``rotation_statement.rotate``, carrying ``device_write`` while it is pending; None: take
    the transactional path. Whatever leaves it before the statement was sent (a policy's
    refusal) leaves with the device's write done."""
    carried = device_write if device_write is not None and device_write.pending else None
    try:
        done = rotation_statement.rotate(presented, raw, successor_token(raw), now=now, issue=issue,
                                         place=place_of(ip), ip=ip, request=request, device_write=carried)
    except Exception:
        if device_write is not None:
            device_write.settle()  # nothing if the statement was sent: it may have committed
        raise
    return None if done is None else Rotated(*done)


def _rotate_locked(
    presented: RefreshToken, raw: str, *, now: datetime, ip: str | None
) -> tuple[DeviceSession, str, bool]:
    """Mark ``presented`` used and store its successor, under the session's row lock: returns
    the family, its one live refresh token and whether this was a retry."""
    session = presented.session
    place = place_of(ip)
    # Lock order everywhere: the session row first, then its tokens (no deadlocks with
    # revocation). Locking it is the write a refresh makes anyway, conditional on the
    # family still being active. It also serialises every rotation of the family, so the
    # judgement below sees the family as it is.
    if not _TOUCH_ACTIVE_SESSION.run(now, ip, place, session.pk, SessionStatus.ACTIVE):
        # Not active (or gone, e.g. its user was deleted a moment ago): say which.
        status = DeviceSession.objects.filter(pk=session.pk).values_list("status", flat=True).first()
        session.status = status or SessionStatus.REVOKED
        stepped = status == SessionStatus.STEP_UP_REQUIRED
        raise _Refusing(Refusal.STEP_UP_REQUIRED if stepped else Refusal.REVOKED)
    session.last_refresh_at, session.last_ip, session.last_place = now, ip, place
    # The common case in one conditional UPDATE; any other state is judged again, under the lock.
    if _MARK_ROTATED.run(now, presented.pk, now):
        return session, issue_refresh_token(session, presented.scope, now, raw=successor_token(raw)), False
    token = RefreshToken.objects.select_for_update().filter(pk=presented.pk).first()
    if token is None:  # purged since the look-up (it had expired)
        raise _Refusing(Refusal.EXPIRED)
    token.session, session.status = session, SessionStatus.ACTIVE  # the UPDATE above just saw it active
    successor = cache(lambda: retry_successor(token, raw, now))
    refusal = judge(token, now=now, successor=successor)
    # Not refused although the conditional UPDATE found it used: a grace retry, and its successor.
    retried = successor() if refusal is None else None
    if retried is None:
        raise _Refusing(refusal or Refusal.REUSE)
    return session, retried, True


_REBIND_DEVICE = Statement(
    DeviceSession, "UPDATE {table} SET device_id = %s WHERE id = %s AND device_id = %s",
    ["device_id", "id", "device_id"],
)


def _rebind(session: DeviceSession, upgraded_from: Any, written: Any, request: HttpRequest | None) -> None:
    """Bind the locked family to its newly attested device, only while it is still bound to the
    unattested one (a concurrent upgrade that won keeps its device: this one is refused)."""
    device = session.device
    assert device is not None
    if not _REBIND_DEVICE.run(device.pk, session.pk, upgraded_from.pk):
        raise _Refusing(Refusal.DEVICE_CHANGED)
    written.record(
        EventType.ATTESTATION_SESSION_UPGRADED, user=session.user, client_id=session.client.client_id,
        session_id=session.sid, request=request, device=device.pk, key_id=device.key_id, platform=device.platform,
        unattested_device=upgraded_from.pk,
    )


# --- revoke and record -----------------------------------------------------------------------
def refuse(token: RefreshToken, reason: Refusal, *, now: datetime, request: HttpRequest | None) -> Refused:
    """Act on a refusal (reuse revokes the family, RFC 9700 §4.14.2) and record it."""
    session = token.session
    if reason == Refusal.REUSE:
        revoke_session(session, Reason.REFRESH_REUSE, now=now)
    events.record(
        EventType.OAUTH_REFRESH_REFUSED,
        outcome=events.Outcome.DENIED,
        reason=reason,
        user=session.user,
        client_id=session.client.client_id,
        session_id=session.sid,
        request=request,
    )
    return Refused(reason)
