"""Test helpers: sign a user in the way staff must reach the admin, with a real second factor
(a confirmed authenticator app and the RFC 6238 code it shows now) through the login pages."""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from django_otp.oath import totp as oath_totp

from core.acr import ACR_MFA

from .models import SealedTOTPDevice
from .totp_secret import open_


def totp_code(device: SealedTOTPDevice) -> str:
    """The code an authenticator app holding ``device``'s secret shows now."""
    value = oath_totp(open_(device.key), step=device.step, t0=device.t0, digits=device.digits)
    return str(value).zfill(device.digits)


def sign_in_with_second_factor(client: Any, user: Any, password: str) -> Any:
    """Password, then a TOTP code from a newly confirmed device: the session's ``acr`` is MFA."""
    device = SealedTOTPDevice.objects.filter(user=user, confirmed=True).first()
    if device is None:
        device = SealedTOTPDevice.create_sealed(user, "admin-test")
        device.confirmed = True
        device.save()
    login = client.post(reverse("accounts:login"),
                        {"username": user.get_username(), "password": password, "acr": ACR_MFA})
    assert login.status_code == 302, login.content
    verified = client.post(reverse("accounts:verify"), {"method": "totp", "code": totp_code(device)})
    assert verified.status_code == 302, verified.content
    assert client.session["vigil_auth"]["amr"] == ["mfa", "otp", "pwd"], client.session.get("vigil_auth")
    return client
