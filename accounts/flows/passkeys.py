"""Passkey registration (WebAuthn L3 §7.1) and management: list, rename, remove."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext
from webauthn.helpers.structs import CredentialDeviceType
from webauthn.registration.verify_registration_response import VerifiedRegistration

from core.encoding import b64url_encode
from core.events import EventType, Outcome, record
from sessions.flows import revocation
from sessions.flows.revocation import CredentialChange, CredentialType, Initiator

from .. import webauthn_rp
from ..models import Passkey, User
from ..webauthn_rp import PasskeyError
from . import policy, recovery, recovery_display

PURPOSE = "register"


class FactorRemovalRefused(Exception):
    """Removing this factor would leave a user whom policy requires to have MFA without one."""

    def __init__(self) -> None:
        self.message = gettext("This is your last second factor and your account requires one. Add another first.")
        super().__init__(self.message)


@dataclass(frozen=True)
class Registered:
    passkey: Passkey
    recovery_codes: list[str]


#: Unicode categories dropped from a passkey's name: control characters and the lone UTF-16
#: surrogates a JSON string may carry (``"\\ud800"``), which no UTF-8 text can hold.
_DROPPED_FROM_NAMES = frozenset({"Cc", "Cs"})


def clean_name(name: str) -> str:
    """A passkey's label without control characters or lone surrogates (a NUL, which PostgreSQL
    text refuses, or a surrogate, which UTF-8 cannot encode, was a 500 after the registration
    had been verified), trimmed to the column's 100 characters."""
    return "".join(ch for ch in name if unicodedata.category(ch) not in _DROPPED_FROM_NAMES).strip()[:100]


def begin(request: HttpRequest, user: User, now: datetime | None = None) -> str:
    """Creation options (JSON) with a fresh challenge; existing passkeys are excluded."""
    challenge = webauthn_rp.new_challenge(request, PURPOSE, now)
    existing = list(Passkey.objects.filter(user=user).values_list("credential_id", flat=True))
    return webauthn_rp.registration_options(
        user.ensure_webauthn_user_handle(), user.get_username(), user.get_full_name(), existing, challenge
    )


def finish(
    request: HttpRequest, user: User, credential: Any, name: str, now: datetime | None = None
) -> Registered:
    """Verify the attestation and store the credential record (§7.1 steps 5-27); the challenge
    is spent once however the browser's requests overlap (``webauthn_rp.spending``)."""
    moment = now or timezone.now()
    try:
        with webauthn_rp.spending(request, PURPOSE, credential, moment, malformed="invalid_registration") as challenge:
            verified, transports = webauthn_rp.verify_registration(credential, challenge)
            return _store(request, user, verified, transports, name, moment)
    except PasskeyError as error:
        record(EventType.FACTOR_PASSKEY_REGISTER, outcome=Outcome.FAILURE, reason=error.code, user=user,
               request=request, detail=error.detail[:200])
        raise


def _store(request: HttpRequest, user: User, verified: VerifiedRegistration, transports: list[str], name: str,
           moment: datetime) -> Registered:
    """The passkey, its record and its first codes: all or none."""
    first_factor = not policy.has_second_factor(user)
    try:
        with transaction.atomic():
            passkey = _create(user, verified, transports, name, moment)
            revocation.credential_changed(
                user, EventType.FACTOR_PASSKEY_ADDED, credential=credential_type(passkey),
                change=CredentialChange.CREATE, request=request, friendly_name=passkey.name, passkey=passkey.pk,
                name=passkey.name, backup_eligible=passkey.backup_eligible, aaguid=passkey.aaguid,
            )
            first_codes = first_factor and not policy.has_recovery_codes(user)
            codes = recovery.generate(user, request, reason="first_factor") if first_codes else []
            recovery_display.keep_saved(request.session, codes)  # the challenge spent, the codes kept
    except IntegrityError as exc:  # §7.1 step 26: a credential id already registered
        raise PasskeyError("duplicate_credential") from exc
    return Registered(passkey=passkey, recovery_codes=codes)


def _create(user: User, verified: VerifiedRegistration, transports: list[str], name: str, moment: datetime) -> Passkey:
    """The credential record (§7.1 step 27); ``IntegrityError`` for a credential id already stored."""
    return Passkey.objects.create(
        user=user,
        name=clean_name(name) or "Passkey",
        credential_id=b64url_encode(verified.credential_id),
        public_key=verified.credential_public_key,
        sign_count=verified.sign_count,
        transports=transports,
        backup_eligible=verified.credential_device_type == CredentialDeviceType.MULTI_DEVICE,
        backup_state=bool(verified.credential_backed_up),
        user_handle=user.ensure_webauthn_user_handle(),
        aaguid=webauthn_rp.aaguid_text(verified.aaguid),
        attestation_format=str(getattr(verified.fmt, "value", verified.fmt))[:32],
        created_at=moment,
    )


def credential_type(passkey: Passkey) -> CredentialType:
    """CAEP 1.0 §3.3.1: a passkey on the device (or synced between devices) is a platform
    credential; one on a security key (USB, NFC, BLE) a roaming one."""
    roaming = {"usb", "nfc", "ble"} & set(passkey.transports or [])
    if roaming and not passkey.backup_eligible and "internal" not in (passkey.transports or []):
        return CredentialType.PASSKEY_ROAMING
    return CredentialType.PASSKEY_PLATFORM


def _announce_removed(request: HttpRequest | None, user: User, passkey: Passkey, passkey_id: int, reason: str,
                      initiator: Initiator = Initiator.USER) -> None:
    revocation.credential_changed(
        user, EventType.FACTOR_PASSKEY_REMOVED, credential=credential_type(passkey), change=CredentialChange.DELETE,
        initiator=initiator, request=request, reason=reason, friendly_name=passkey.name, passkey=passkey_id,
    )


def announce_all_removed(request: HttpRequest | None, user: User, removed: list[Passkey], reason: str) -> None:
    """An admin removed these passkeys (a factor reset, deleting by query: each keeps its
    ``pk``): one credential-change each."""
    for passkey in removed:
        _announce_removed(request, user, passkey, passkey.pk, reason, initiator=Initiator.ADMIN)


def list_for(user: User) -> list[Passkey]:
    return list(Passkey.objects.filter(user=user))


def rename(request: HttpRequest, user: User, passkey_id: int, name: str) -> bool:
    name = clean_name(name)
    if not name:
        return False
    updated = Passkey.objects.filter(pk=passkey_id, user=user).update(name=name)
    if updated:
        record(EventType.FACTOR_PASSKEY_RENAMED, user=user, request=request, passkey=passkey_id, name=name)
    return bool(updated)


def remove(request: HttpRequest | None, user: User, passkey_id: int, reason: str = "user") -> bool:
    """Delete one passkey, unless it is the last second factor of a user who must have MFA."""
    with transaction.atomic():
        locked = {p.pk: p for p in Passkey.objects.select_for_update().filter(user=user)}
        passkey = locked.get(passkey_id)
        if passkey is None:
            return False
        allowed = policy.can_remove_factor(user, "passkey", passkey_id=passkey.pk)
        if allowed:
            passkey.delete()
            _announce_removed(request, user, passkey, passkey_id, reason)
    if not allowed:
        record(EventType.FACTOR_PASSKEY_REMOVE, outcome=Outcome.DENIED, reason="last_factor", user=user,
               request=request, passkey=passkey_id)
        raise FactorRemovalRefused()
    if not policy.has_second_factor(user):
        recovery.delete_all(user, request, reason="no_second_factor_left")
    return True
