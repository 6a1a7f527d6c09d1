"""Resolve a received ``sub_id`` (RFC 9493 Subject Identifiers, SSF 1.0 §"Subject Members")
to our sessions and devices.

- ``opaque``: at the top level or as ``session``, a session's ``sid``; as ``device``, a
  device's attested key id; as ``user``, the user's ``sub``.
- ``iss_sub`` with *our* issuer: ``sub`` is the user's ``sub`` (or, as ``device``, a key id).
- ``email``: the users with that verified address, only if the transmitter is trusted for it.
- ``complex``: the members are attributes of one principal, so their matches intersect.

A client-scoped transmitter only ever reaches that client's sessions and devices.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Q

from attestation.models import Device
from core.app_settings import app_settings as idp_settings
from core.text import storable_text
from sessions.models import DeviceSession, SessionStatus

from .models import SsfTransmitter

MAX_ID = 255


@dataclass
class Match:
    """What a subject names here: sessions (not yet revoked) and devices."""

    sessions: list[DeviceSession] = field(default_factory=list)
    devices: list[Device] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.sessions and not self.devices


def _text(member: dict[str, Any], name: str) -> str | None:
    value = member.get(name)
    return value if storable_text(value, MAX_ID) else None


def _user_filter(member: dict[str, Any], transmitter: SsfTransmitter) -> Q | None:
    """A filter on users for a ``user`` (or top-level user) simple subject."""
    fmt = member.get("format")
    if fmt == "iss_sub" and member.get("iss") == idp_settings.ISSUER and _text(member, "sub"):
        return Q(subject=_text(member, "sub")) if _is_uuid(member["sub"]) else None
    if fmt == "opaque" and _text(member, "id") and _is_uuid(member["id"]):
        return Q(subject=member["id"])
    if fmt == "email" and transmitter.trust_email and _text(member, "email"):
        return Q(email__iexact=member["email"], email_verified=True)
    return None


def _is_uuid(value: str) -> bool:
    import uuid

    try:
        uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        return False
    return True


def _device_key_id(member: dict[str, Any]) -> str | None:
    if member.get("format") == "opaque":
        return _text(member, "id")
    if member.get("format") == "iss_sub" and member.get("iss") == idp_settings.ISSUER:
        return _text(member, "sub")
    return None


def _session_sid(member: dict[str, Any]) -> str | None:
    return _text(member, "id") if member.get("format") == "opaque" else None


def _members(sub_id: dict[str, Any]) -> dict[str, dict[str, Any]] | None:
    """The simple members by role, or None when the subject cannot be interpreted."""
    fmt = sub_id.get("format")
    if fmt == "complex":
        members = {k: v for k, v in sub_id.items() if k in {"user", "session", "device"} and isinstance(v, dict)}
        return members or None
    if fmt == "opaque":
        return {"session": sub_id}
    if fmt in {"iss_sub", "email"}:
        return {"user": sub_id}
    return None


def resolve(sub_id: dict[str, Any], transmitter: SsfTransmitter) -> Match:
    """The sessions and devices ``sub_id`` names, within the transmitter's scope."""
    members = _members(sub_id)
    if members is None:
        return Match()
    sessions = DeviceSession.objects.exclude(status=SessionStatus.REVOKED).select_related("user", "client", "device")
    devices = Device.objects.select_related("app", "app__client")
    if transmitter.client_id is not None:
        sessions = sessions.filter(client_id=transmitter.client_id)
        devices = devices.filter(app__client_id=transmitter.client_id)
    for role, member in members.items():
        narrowed = _narrow(role, member, transmitter, sessions, devices)
        if narrowed is None:
            return Match()
        sessions, devices = narrowed
    device_list = list(devices) if "device" in members else []
    return Match(sessions=list(sessions[:1000]), devices=device_list)


def _narrow(role: str, member: dict[str, Any], transmitter: SsfTransmitter, sessions: Any, devices: Any) -> Any:
    if role == "session":
        sid = _session_sid(member)
        return None if sid is None else (sessions.filter(sid=sid), devices.filter(sessions__sid=sid))
    if role == "device":
        key_id = _device_key_id(member)
        return None if key_id is None else (sessions.filter(device__key_id=key_id), devices.filter(key_id=key_id))
    users = _user_filter(member, transmitter)
    if users is None:
        return None
    user_ids = get_user_model().objects.filter(users).values("pk")
    return sessions.filter(user_id__in=user_ids), devices.filter(sessions__user_id__in=user_ids).distinct()
