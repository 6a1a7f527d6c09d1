"""TOTP (RFC 6238) with django-otp's ``TOTPDevice``: enrollment, verification, removal.

A device counts only once confirmed by a first valid code (``flows.totp_enroll``).
Verification runs under a row lock so ``last_t`` (the last accepted time step) makes each
code single-use even under concurrent requests (RFC 6238 §5.2: "the verifier MUST NOT
accept the second attempt").
"""

from __future__ import annotations

import hmac
from base64 import b32encode
from datetime import datetime, timedelta
from urllib.parse import quote, urlencode

import segno
from django.db import transaction
from django.http import HttpRequest
from django.utils.translation import gettext
from django_otp.oath import hotp

from core.events import EventType
from sessions.flows import revocation
from sessions.flows.revocation import CredentialChange, CredentialType, Initiator

from ..app_settings import app_settings
from ..models import SealedTOTPDevice as TOTPDevice
from ..models import User

DEVICE_NAME = "Authenticator app"
#: How long after a code was accepted the same code, sent again, is taken as that code repeated:
#: a double click arrives within a second, a browser's retry within a proxy timeout.
REPEAT_WINDOW = timedelta(minutes=5)


def unconfirmed_device(user: User) -> TOTPDevice | None:
    return TOTPDevice.objects.filter(user=user, confirmed=False).order_by("-pk").first()


def pending_device(user: User) -> TOTPDevice:
    """The user's unconfirmed device (a new secret if there is none yet), under the user's row
    lock as confirmations are (``flows.totp_enroll``): set-up pages loaded at once (two tabs)
    show the one secret, never each their own, of which only the newest could be confirmed."""
    with transaction.atomic():
        User.objects.select_for_update(no_key=True).only("pk").get(pk=user.pk)
        return unconfirmed_device(user) or TOTPDevice.create_sealed(user, DEVICE_NAME)


def confirmed_device(user: User) -> TOTPDevice | None:
    return TOTPDevice.objects.filter(user=user, confirmed=True).order_by("pk").first()


def secret_base32(device: TOTPDevice) -> str:
    return b32encode(device.bin_key).decode().rstrip("=")


def provisioning_uri(device: TOTPDevice) -> str:
    """The ``otpauth://`` Key URI authenticator apps import."""
    issuer = app_settings.TOTP_ISSUER.replace(":", "")
    label = f"{issuer}:{device.user.get_username()}"
    params = {"secret": secret_base32(device), "issuer": issuer, "algorithm": "SHA1",
              "digits": device.digits, "period": device.step}
    return f"otpauth://totp/{quote(label)}?{urlencode(params, quote_via=quote)}"


def qr_svg(device: TOTPDevice) -> str:
    """An inline SVG QR code of the provisioning URI, rendered here (no external service)."""
    return segno.make(provisioning_uri(device), error="m").svg_inline(
        scale=4, title=gettext("QR code for your authenticator app"), svgclass="qr"
    )


def _clean(code: str) -> str | None:
    digits = "".join(code.split())
    # ASCII only: str.isdigit also accepts "٣" or "²", which django-otp's int() would read.
    return digits if digits.isascii() and digits.isdigit() and len(digits) in (6, 8) else None


def verify_device(device_pk: int, code: str) -> bool:
    """Check ``code`` against the device, under a row lock (no replay of a used time step)."""
    token = _clean(code)
    if token is None:
        return False
    with transaction.atomic():
        device = TOTPDevice.objects.select_for_update().get(pk=device_pk)
        return bool(device.verify_token(token))


def is_last_accepted(device: TOTPDevice, code: str) -> bool:
    """Whether ``code`` is the one ``device`` last accepted: the code of its time step ``last_t``
    (HOTP of the step, RFC 6238 §4.2). Such a code is no new proof (``verify_token`` refuses it)."""
    token = _clean(code)
    if token is None or device.last_t < 0:
        return False
    expected = hotp(device.bin_key, device.last_t, digits=device.digits)
    return hmac.compare_digest(str(int(token)), str(expected))  # int(), as django-otp reads a code


def accepted_moments_ago(device: TOTPDevice, code: str, now: datetime) -> bool:
    """Whether ``code`` is the one ``device`` accepted within ``REPEAT_WINDOW`` before ``now``:
    sent again (a double click, a retry), it is no new proof and no wrong guess either."""
    if device.last_used_at is None or now - device.last_used_at > REPEAT_WINDOW:
        return False
    return is_last_accepted(device, code)


def verify(user: User, code: str) -> bool:
    """A login-time check against the user's confirmed device."""
    device = confirmed_device(user)
    return device is not None and verify_device(device.pk, code)


def remove(
    user: User, request: HttpRequest | None = None, reason: str = "user", initiator: Initiator = Initiator.USER
) -> bool:
    """Delete the authenticator app (confirmed or pending); a confirmed one is a credential
    change (CAEP 1.0 §3.3), announced through ``sessions.flows.revocation``."""
    with transaction.atomic():
        confirmed = TOTPDevice.objects.filter(user=user, confirmed=True).exists()
        deleted, _ = TOTPDevice.objects.filter(user=user).delete()
        if confirmed:
            revocation.credential_changed(
                user,
                EventType.FACTOR_TOTP_REMOVED,
                credential=CredentialType.AUTHENTICATOR_APP,
                change=CredentialChange.DELETE,
                initiator=initiator,
                request=request,
                reason=reason,
            )
    return bool(deleted)
