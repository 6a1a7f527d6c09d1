"""The Transmitter: turn a security decision into one SET per interested receiver.

``emit`` stores one ``SetDelivery`` row per receiver in the caller's transaction and
enqueues its push when that transaction commits (a rollback sends nothing). The CAEP 1.0
helpers other apps call:

- ``emit_session_revoked(session, ...)`` — wired to every ``session.revoked`` security event;
- ``emit_credential_change(user, credential_type=..., change_type=..., ...)`` — accounts;
- ``emit_device_compliance_change(device, previous_status=..., current_status=..., ...)`` — device health.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from django.db import transaction
from django.utils import timezone

from core.app_settings import app_settings as idp_settings
from sessions.models import DeviceSession

from . import set_tokens
from .models import CaepEvent, SetDelivery, SsfReceiver
from .tasks import deliver_security_event

logger = logging.getLogger("vigil.ssf")

INITIATING_ENTITIES = {"admin", "user", "policy", "system"}
CREDENTIAL_TYPES = {
    "password", "pin", "x509", "fido2-platform", "fido2-roaming", "fido-u2f", "verifiable-credential",
    "phone-voice", "phone-sms", "app",
}
CHANGE_TYPES = {"create", "revoke", "update", "delete"}
COMPLIANCE_STATUSES = {"compliant", "not-compliant"}


@dataclass(frozen=True)
class Subject:
    """A ``sub_id`` (SSF 1.0 §"Subject Members") plus what scopes it to a client."""

    sub_id: dict[str, Any]
    user_pk: Any = None
    client_pk: int | None = None

    def concerns(self, receiver: SsfReceiver) -> bool:
        """A client-scoped receiver hears only of its sessions, its users and its apps' devices."""
        if receiver.client_id is None:
            return True
        if self.client_pk is not None:
            return self.client_pk == receiver.client_id
        if self.user_pk is None:
            return False

        return DeviceSession.objects.filter(user_id=self.user_pk, client_id=receiver.client_id).exists()


def _iss_sub(sub: str) -> dict[str, str]:
    return {"format": "iss_sub", "iss": idp_settings.ISSUER, "sub": sub}


def user_subject(user: Any) -> Subject:
    """RFC 9493 ``iss_sub``: our issuer and the user's ``sub``."""
    return Subject(_iss_sub(user.get_user_id()), user_pk=user.pk)


def session_subject(session: Any) -> Subject:
    """SSF complex subject: the session (``opaque`` sid), its user and, when bound, its device."""
    sub_id: dict[str, Any] = {
        "format": "complex",
        "session": {"format": "opaque", "id": session.sid},
        "user": _iss_sub(session.user.get_user_id()),
    }
    if session.device_id is not None:
        sub_id["device"] = {"format": "opaque", "id": session.device.key_id}
    return Subject(sub_id, user_pk=session.user_id, client_pk=session.client_id)


def device_subject(device: Any) -> Subject:
    """SSF complex subject with the device as an ``opaque`` id: our attested key id."""
    sub_id = {"format": "complex", "device": {"format": "opaque", "id": device.key_id}}
    return Subject(sub_id, client_pk=device.app.client_id)


def _event(
    reason_admin: str, reason_user: str, initiating_entity: str | None, event_timestamp: datetime | None,
) -> dict[str, Any]:
    """CAEP 1.0 §2 optional event claims."""
    event: dict[str, Any] = {}
    if event_timestamp is not None:
        event["event_timestamp"] = int(event_timestamp.timestamp())
    if initiating_entity:
        if initiating_entity not in INITIATING_ENTITIES:
            raise ValueError(f"initiating_entity must be one of {sorted(INITIATING_ENTITIES)}")
        event["initiating_entity"] = initiating_entity
    if reason_admin:
        event["reason_admin"] = {"en": reason_admin}
    if reason_user:
        event["reason_user"] = {"en": reason_user}
    return event


def emit(
    event_type: str,
    *,
    subject: Subject,
    reason_admin: str = "",
    reason_user: str = "",
    initiating_entity: str | None = None,
    event_timestamp: datetime | None = None,
    txn: str | None = None,
    fields: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> list[SetDelivery]:
    """Queue one SET of ``event_type`` for every enabled receiver that requested it."""
    moment = now or timezone.now()
    event = _event(reason_admin, reason_user, initiating_entity, event_timestamp or moment)
    event.update(fields or {})
    receivers = [r for r in SsfReceiver.objects.filter(enabled=True) if r.wants(event_type) and subject.concerns(r)]
    rows = []
    for receiver in receivers:
        claims = set_tokens.build(
            audience=receiver.audience, event_type=event_type, sub_id=subject.sub_id, event=event, now=moment, txn=txn
        )
        rows.append(SetDelivery(receiver=receiver, jti=claims["jti"], event_type=event_type, claims=claims,
                                created_at=moment))
    with transaction.atomic():
        created = SetDelivery.objects.bulk_create(rows)
        for row in created:
            transaction.on_commit(partial(enqueue, row.pk))
    return created


def enqueue(delivery_pk: int) -> None:
    """Hand one delivery to Celery; a broker outage leaves it to the retry sweep."""
    from kombu.exceptions import OperationalError

    try:
        deliver_security_event.delay(delivery_pk)
    except (OperationalError, OSError) as exc:
        logger.warning("SET delivery %s not enqueued (%s); the retry sweep will send it", delivery_pk, exc)


def emit_session_revoked(
    session: Any, *, reason_admin: str = "", initiating_entity: str | None = "policy", txn: str | None = None,
    now: datetime | None = None,
) -> list[SetDelivery]:
    """CAEP 1.0 §3.1 session-revoked for one of our sessions (token families)."""
    return emit(
        CaepEvent.SESSION_REVOKED, subject=session_subject(session), reason_admin=reason_admin,
        initiating_entity=initiating_entity, event_timestamp=session.revoked_at, txn=txn, now=now,
    )


def emit_credential_change(
    user: Any, *, credential_type: str, change_type: str, reason_admin: str = "", friendly_name: str = "",
    fido2_aaguid: str = "", initiating_entity: str | None = "user", now: datetime | None = None,
) -> list[SetDelivery]:
    """CAEP 1.0 §3.3 credential-change: a password, passkey, TOTP... created/updated/revoked/deleted."""
    if credential_type not in CREDENTIAL_TYPES or change_type not in CHANGE_TYPES:
        raise ValueError("unsupported credential_type or change_type (CAEP 1.0 §3.3.1)")
    fields = {"credential_type": credential_type, "change_type": change_type}
    if friendly_name:
        fields["friendly_name"] = friendly_name
    if fido2_aaguid:
        fields["fido2_aaguid"] = fido2_aaguid
    return emit(
        CaepEvent.CREDENTIAL_CHANGE, subject=user_subject(user), reason_admin=reason_admin,
        initiating_entity=initiating_entity, fields=fields, now=now,
    )


def emit_device_compliance_change(
    device: Any, *, previous_status: str, current_status: str, reason_admin: str = "",
    initiating_entity: str | None = "policy", now: datetime | None = None,
) -> list[SetDelivery]:
    """CAEP 1.0 §3.5 device-compliance-change for one of our attested devices."""
    if previous_status not in COMPLIANCE_STATUSES or current_status not in COMPLIANCE_STATUSES:
        raise ValueError("statuses must be 'compliant' or 'not-compliant' (CAEP 1.0 §3.5.1)")
    return emit(
        CaepEvent.DEVICE_COMPLIANCE_CHANGE, subject=device_subject(device), reason_admin=reason_admin,
        initiating_entity=initiating_entity, fields={"previous_status": previous_status,
                                                     "current_status": current_status}, now=now,
    )
