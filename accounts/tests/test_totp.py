"""TOTP (RFC 6238) enrollment and use with real codes computed from the stored secret."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse
from django_otp.plugins.otp_static.models import StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.tests.conftest import code_for, login_password, session_auth, signed_in
from core.models import SecurityEvent

pytestmark = pytest.mark.django_db


def test_enrollment_shows_qr_and_secret_and_needs_a_valid_code(client: Any, user: Any, frozen: Any) -> None:
    login_password(client)
    page = client.get(reverse("accounts:totp_enroll"))
    assert page.status_code == 200
    body = page.content.decode()
    assert "<svg" in body and "<script" not in body.split("<main")[1].split("</main>")[0]
    device = TOTPDevice.objects.get(user=user)
    assert device.confirmed is False
    assert page.context["secret"] in body

    wrong = client.post(reverse("accounts:totp_enroll"), {"code": "000000" if code_for(device) != "000000" else "111111"})
    assert wrong.status_code == 400
    assert not TOTPDevice.objects.get(pk=device.pk).confirmed

    frozen.shift(2)  # django-otp's own back-off after a failure is 1 s
    ok = client.post(reverse("accounts:totp_enroll"), {"code": code_for(device)})
    assert ok.status_code == 303  # Post/Redirect/Get: the codes are shown by the next GET
    assert ok["Location"] == reverse("accounts:recovery_codes") + "?next=%2Faccounts%2F"
    assert len(client.get(ok["Location"]).context["codes"]) == 10  # recovery codes, shown once
    assert TOTPDevice.objects.get(pk=device.pk).confirmed
    assert signed_in(client)["amr"] == ["mfa", "otp", "pwd"]
    assert SecurityEvent.objects.filter(event_type="factor.totp.enrolled", user=user).exists()
    assert SecurityEvent.objects.filter(event_type="factor.recovery_codes.generated", user=user).exists()


def test_login_with_totp_gives_mfa(client: Any, user: Any, totp_device: TOTPDevice, frozen: Any) -> None:
    response = login_password(client, next="/accounts/")
    assert response.status_code == 302 and response.url.startswith(reverse("accounts:verify"))
    assert session_auth(client) is None  # not signed in before the second factor
    assert client.get(reverse("accounts:profile")).status_code == 302

    done = client.post(reverse("accounts:verify"), {"method": "totp", "code": code_for(totp_device), "next": "/accounts/"})
    assert done.status_code == 302
    final = client.get(done.url)
    assert final.status_code == 302 and final.url == "/accounts/"
    auth = signed_in(client)
    assert auth["amr"] == ["mfa", "otp", "pwd"]


def test_used_code_cannot_be_replayed(client: Any, user: Any, totp_device: TOTPDevice, frozen: Any) -> None:
    code = code_for(totp_device)
    login_password(client)
    assert client.post(reverse("accounts:verify"), {"method": "totp", "code": code}).status_code == 302
    client.post(reverse("accounts:logout"))

    login_password(client)
    frozen.shift(5)  # same 30 s step: the code is still the current one
    assert code_for(totp_device) == code
    replay = client.post(reverse("accounts:verify"), {"method": "totp", "code": code})
    assert replay.status_code == 400
    assert session_auth(client) is None
    # recorded as the replay it is; no guess, so no failure counted (test_login_flow: ..._counts_nothing)
    assert SecurityEvent.objects.filter(event_type="login.second_factor", outcome="denied", reason="code_reused").exists()

    frozen.shift(30)  # the next step's code works
    assert client.post(reverse("accounts:verify"), {"method": "totp", "code": code_for(totp_device)}).status_code == 302


def test_a_session_write_failing_after_a_recovery_code_leaves_the_code(
    client: Any, user: Any, totp_device: TOTPDevice, recovery_codes: list[str], frozen: Any
) -> None:
    """The recovery code is right, but writing the signed-in session fails (the database went
    away): a 503 that spent nothing, so the retry with the same code signs in, with no failure
    counted. Committed apart, the code was spent for a sign-in that never happened, and the
    retry was a wrong code counted against the user."""
    from core.outage_testing import database_down

    def writing_a_session(sql: str) -> bool:
        return sql.lstrip().upper().startswith("INSERT") and "django_session" in sql

    login_password(client)
    with database_down(writing_a_session) as refused:
        failed = client.post(reverse("accounts:verify"), {"method": "recovery", "code": recovery_codes[0]})
    assert refused and failed.status_code == 503
    assert session_auth(client) is None
    assert StaticToken.objects.filter(device__user=user).count() == len(recovery_codes)  # not spent
    assert not SecurityEvent.objects.filter(event_type__in=["factor.recovery_code.used", "login.completed"]).exists()

    retry = client.post(reverse("accounts:verify"), {"method": "recovery", "code": recovery_codes[0]})
    assert retry.status_code == 302 and signed_in(client)["amr"] == ["mfa", "otp", "pwd"]
    assert StaticToken.objects.filter(device__user=user).count() == len(recovery_codes) - 1
    assert not SecurityEvent.objects.filter(event_type="login.second_factor", outcome="failure").exists()


def test_recovery_code_is_single_use(
    client: Any, user: Any, totp_device: TOTPDevice, recovery_codes: list[str], frozen: Any
) -> None:
    login_password(client)
    first = client.post(reverse("accounts:verify"), {"method": "recovery", "code": recovery_codes[0].upper()})
    assert first.status_code == 302
    assert signed_in(client)["amr"] == ["mfa", "otp", "pwd"]
    assert SecurityEvent.objects.filter(event_type="factor.recovery_code.used", user=user).exists()
    client.post(reverse("accounts:logout"))

    login_password(client)
    again = client.post(reverse("accounts:verify"), {"method": "recovery", "code": recovery_codes[0]})
    assert again.status_code == 400
    assert client.post(reverse("accounts:verify"), {"method": "recovery", "code": recovery_codes[1]}).status_code == 302


def test_recovery_codes_are_stored_hashed_and_regenerable(
    client: Any, user: Any, totp_device: TOTPDevice, recovery_codes: list[str], frozen: Any
) -> None:
    from django_otp.plugins.otp_static.models import StaticToken

    stored = set(StaticToken.objects.filter(device__user=user).values_list("token", flat=True))
    assert not stored & {c.replace("-", "") for c in recovery_codes}
    login_password(client)
    client.post(reverse("accounts:verify"), {"method": "totp", "code": code_for(totp_device)})
    token = client.get(reverse("accounts:profile")).context["recovery_form_token"]
    regenerated = client.post(reverse("accounts:recovery_regenerate"), {"form_token": token})
    assert regenerated.status_code == 303  # Post/Redirect/Get: shown by the codes page
    new_codes = client.get(regenerated["Location"]).context["codes"]
    assert len(new_codes) == 10
    assert set(new_codes).isdisjoint(recovery_codes)
    client.post(reverse("accounts:logout"))
    login_password(client)
    assert client.post(reverse("accounts:verify"), {"method": "recovery", "code": recovery_codes[2]}).status_code == 400


def test_recovery_codes_outlive_a_rotation_of_the_encryption_secret(user: Any, recovery_codes: list[str],
                                                                    settings: Any) -> None:
    """Codes made before ``IDP_KEY_ENCRYPTION_SECRET`` rotated still work with the old secret as
    a fallback (each once), and stop working when it is dropped, like every other secret at rest."""
    from accounts.flows import recovery

    first, second, third = recovery_codes[:3]
    settings.IDP_KEY_ENCRYPTION_SECRET_FALLBACKS = [settings.IDP_KEY_ENCRYPTION_SECRET]
    settings.IDP_KEY_ENCRYPTION_SECRET = "a-new-key-encryption-secret"
    assert recovery.still_valid(user, [first, "AAAAA-AAAAA"]) == [first]
    assert recovery.use(user, first) and not recovery.use(user, first)
    assert recovery.remaining(user) == len(recovery_codes) - 1
    fresh = recovery.generate(user)  # made under the new secret
    assert recovery.use(user, fresh[0]) and not recovery.use(user, second)  # the old set is gone
    settings.IDP_KEY_ENCRYPTION_SECRET_FALLBACKS = []
    assert recovery.use(user, fresh[1]) and not recovery.use(user, third)


def test_remove_totp(client: Any, user: Any, totp_device: TOTPDevice, recovery_codes: list[str], frozen: Any) -> None:
    login_password(client)
    client.post(reverse("accounts:verify"), {"method": "totp", "code": code_for(totp_device)})
    client.post(reverse("accounts:totp_remove"))
    assert not TOTPDevice.objects.filter(user=user).exists()
    assert SecurityEvent.objects.filter(event_type="factor.totp.removed", user=user).exists()
    # no second factor left: the recovery codes go too
    assert SecurityEvent.objects.filter(event_type="factor.recovery_codes.removed", user=user).exists()


def test_secret_is_encrypted_at_rest(client: Any, user: Any, settings: Any) -> None:
    from accounts import totp_secret

    login_password(client)
    page = client.get(reverse("accounts:totp_enroll"))
    stored = TOTPDevice.objects.get(user=user).key
    raw = totp_secret.open_(stored)
    assert len(stored) == 120 and raw.hex() not in stored  # a Fernet token (core.crypto)
    from base64 import b32encode

    assert b32encode(raw).decode().rstrip("=") == page.context["secret"]
    # the key-encryption secret can rotate: the old one as a fallback still opens it
    settings.IDP_KEY_ENCRYPTION_SECRET_FALLBACKS = [settings.IDP_KEY_ENCRYPTION_SECRET]
    settings.IDP_KEY_ENCRYPTION_SECRET = "a-new-key-encryption-secret"
    assert totp_secret.open_(stored) == raw
    settings.IDP_KEY_ENCRYPTION_SECRET_FALLBACKS = []
    with pytest.raises(totp_secret.SecretUnavailable):
        totp_secret.open_(stored)


def test_a_code_in_other_script_digits_is_refused(totp_device: TOTPDevice, frozen: Any) -> None:
    """``str.isdigit`` accepts "٣" (and django-otp's int() reads it as 3): only ASCII digits are a code."""
    from accounts.flows import totp

    valid = code_for(totp_device)
    arabic_indic = valid.translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))
    assert totp.verify_device(totp_device.pk, arabic_indic) is False
    totp_device.refresh_from_db()
    assert totp_device.last_t == -1  # nothing was used up
    assert totp.verify_device(totp_device.pk, valid) is True
