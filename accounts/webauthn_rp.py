"""The WebAuthn Relying Party boundary over py_webauthn: options, challenges, verification.

Every library exception becomes one ``PasskeyError`` with a stable code (never a 500).
Challenges live in the server-side session, the latest few per purpose (a page in each
tab), each short-lived and single-use (WebAuthn L3 §13.4.3), the single use kept by a mark in
the shared cache, since a session can be written over by another request (``spending``). Origins accepted are
``ACCOUNTS_WEBAUTHN_ALLOWED_ORIGINS``, which may include native Android origins
``android:apk-key-hash:...`` (§7.1 step 9).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import datetime
from typing import Any

from django.core.cache import cache
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext_lazy
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.authentication.verify_authentication_response import VerifiedAuthentication
from webauthn.helpers import (
    base64url_to_bytes,
    parse_authentication_credential_json,
    parse_registration_credential_json,
)
from webauthn.helpers.structs import (
    AttestationConveyancePreference,
    AuthenticationCredential,
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)
from webauthn.registration.verify_registration_response import VerifiedRegistration

from core.cache import UNAVAILABLE, claim
from core.crypto import constant_time_equals
from core.encoding import b64url_encode

from .app_settings import app_settings
from .models import Passkey

CHALLENGE_SESSION_KEY = "vigil_webauthn"


class PasskeyError(Exception):
    """A refused WebAuthn ceremony; ``code`` is stable, the message is safe to show."""

    MESSAGE = gettext_lazy("The passkey could not be verified. Try again.")

    def __init__(self, code: str, detail: str = ""):
        super().__init__(str(self.MESSAGE))
        self.code = code
        self.detail = detail
        self.message = str(self.MESSAGE)
        self.passkey: Passkey | None = None


def apk_key_hash_origin(sha256_fingerprint: str) -> str:
    """The origin an Android app presents (``AA:BB:..`` SHA-256 of its signing certificate)."""
    raw = bytes.fromhex(sha256_fingerprint.replace(":", ""))
    return "android:apk-key-hash:" + b64url_encode(raw)


# --- challenges --------------------------------------------------------------------------
#: Challenges kept per purpose: each page asks for its own (a sign-in page in two tabs, its
#: autofill in the background), and the ceremony names the one it answers (clientDataJSON).
MAX_CHALLENGES = 5
#: How long a spent challenge's used-mark outlives the challenge (clocks of other workers).
USED_MARGIN_SECONDS = 60
USED_KEY_PREFIX = "vigil:webauthn-challenge-used:"


def new_challenge(request: HttpRequest, purpose: str, now: datetime | None = None) -> bytes:
    """A fresh challenge for ``purpose``, kept with the (at most ``MAX_CHALLENGES - 1``) latest
    ones still out: a second tab asking for options does not void the first tab's."""
    moment = now or timezone.now()
    challenge = secrets.token_bytes(32)
    store = request.session.get(CHALLENGE_SESSION_KEY) or {}
    entry = {"c": b64url_encode(challenge), "exp": int(moment.timestamp()) + app_settings.WEBAUTHN_CHALLENGE_SECONDS}
    store[purpose] = [*_kept(store.get(purpose)), entry][-MAX_CHALLENGES:]
    request.session[CHALLENGE_SESSION_KEY] = store
    return challenge


def _kept(value: Any) -> list[dict[str, Any]]:
    """The purpose's challenges, oldest first (a session from before several were kept holds one)."""
    entries = value if isinstance(value, list) else [value] if value else []
    return [entry for entry in entries if isinstance(entry, dict)]


@contextmanager
def spending(
    request: HttpRequest, purpose: str, credential: Any, now: datetime | None = None, *, malformed: str
) -> Iterator[bytes]:
    """The challenge ``credential`` answers, taken from the session (``pop_challenge``; a
    response naming none is refused as ``malformed``, the ceremony's code for it) and
    marked used in the shared cache (``core.cache.claim``, atomic), for the block that judges
    the ceremony: single use (WebAuthn L3 §13.4.3) even when the session is not. Django writes
    a request's whole session back at its end, so a request of the same browser that read it
    before (another tab asking for options) can write a spent challenge back; and two requests
    sending one response at once both read it: of those, one gets it, the others are refused
    (``challenge_used``). A block that judged the ceremony (ended, or refused it with a
    ``PasskeyError``) spent the challenge; one that failed otherwise (the database went away)
    judged nothing and gives the mark back, so the same response sent again is judged afresh
    (the session, not saved with a 5xx, still holds the challenge)."""
    moment = now or timezone.now()
    challenge, expires = pop_challenge(request, purpose, moment, claimed_challenge(credential), malformed)
    key = USED_KEY_PREFIX + hashlib.sha256(challenge).hexdigest()
    if not claim(cache, key, expires - int(moment.timestamp()) + USED_MARGIN_SECONDS):
        raise PasskeyError("challenge_used")
    try:
        yield challenge
    except PasskeyError:
        raise
    except BaseException:
        with suppress(*UNAVAILABLE):  # the cache gone too: the mark stays, the retry starts a new ceremony
            cache.delete(key)
        raise


def pop_challenge(
    request: HttpRequest, purpose: str, now: datetime, claimed: str, malformed: str
) -> tuple[bytes, int]:
    """The challenge the ceremony answers (``claimed``, its clientDataJSON's) and its expiry,
    removed from the session, or ``PasskeyError``: ``no_challenge`` (none kept),
    ``challenge_expired`` (none live, or the one named has expired), ``malformed`` (the
    response names none) or ``unknown_challenge`` (the one named is not kept: another tab's
    session write lost it, or it was spent). A refusal spends no other ceremony's challenge:
    each tab's stays for its own response."""
    store = request.session.get(CHALLENGE_SESSION_KEY) or {}
    entries = _kept(store.get(purpose))
    live = [entry for entry in entries if now.timestamp() < int(entry["exp"])]
    named = next((entry for entry in entries if constant_time_equals(str(entry["c"]), claimed)), None)
    chosen = named if named is not None and named in live else None
    if chosen is not None or len(live) < len(entries):  # the one taken and the expired ones go
        _keep(request, store, purpose, [entry for entry in live if entry is not chosen])
    if not entries:
        raise PasskeyError("no_challenge")
    if not live or (named is not None and chosen is None):
        raise PasskeyError("challenge_expired")
    if not claimed:
        raise PasskeyError(malformed)
    if chosen is None:
        raise PasskeyError("unknown_challenge")
    return base64url_to_bytes(chosen["c"]), int(chosen["exp"])


def _keep(request: HttpRequest, store: dict[str, Any], purpose: str, entries: list[dict[str, Any]]) -> None:
    if entries:
        store[purpose] = entries
    else:
        store.pop(purpose, None)
    request.session[CHALLENGE_SESSION_KEY] = store


def claimed_challenge(credential: Any) -> str:
    """The challenge a ``create()``/``get()`` response says it answers (its clientDataJSON's
    ``challenge``, §5.8.1), or "" when it cannot be read (verification then refuses it)."""
    try:
        data = json.loads(credential) if isinstance(credential, str) else credential
        value = json.loads(base64url_to_bytes(data["response"]["clientDataJSON"]))["challenge"]
    except Exception:  # library boundary: anything malformed is only no claim
        return ""
    return value if isinstance(value, str) and value.isascii() else ""  # base64url is ASCII


# --- registration (WebAuthn L3 §7.1) -------------------------------------------------------
def registration_options(
    user_handle: str, user_name: str, display_name: str, exclude: list[str], challenge: bytes
) -> str:
    """Creation options for a discoverable credential with user verification required."""
    options = generate_registration_options(
        rp_id=app_settings.WEBAUTHN_RP_ID,
        rp_name=app_settings.WEBAUTHN_RP_NAME,
        user_id=base64url_to_bytes(user_handle),
        user_name=user_name,
        user_display_name=display_name or user_name,
        challenge=challenge,
        timeout=app_settings.WEBAUTHN_CHALLENGE_SECONDS * 1000,
        attestation=AttestationConveyancePreference.NONE,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.REQUIRED,
            require_resident_key=True,
            user_verification=UserVerificationRequirement.REQUIRED,
        ),
        exclude_credentials=[PublicKeyCredentialDescriptor(id=base64url_to_bytes(c)) for c in exclude],
    )
    return options_to_json(options)


#: WebAuthn L3 §7.1 (registering a new credential): "Verify that the credentialId is ≤ 1023 bytes."
MAX_CREDENTIAL_ID_BYTES = 1023


def verify_registration(credential: Any, challenge: bytes, **overrides: Any) -> tuple[VerifiedRegistration, list[str]]:
    """Verify a ``create()`` response; returns the result and the transports the browser reported."""
    params: dict[str, Any] = {
        "expected_challenge": challenge,
        "expected_rp_id": app_settings.WEBAUTHN_RP_ID,
        "expected_origin": app_settings.WEBAUTHN_ALLOWED_ORIGINS,
        "require_user_verification": True,
    }
    params.update(overrides)
    try:
        parsed = parse_registration_credential_json(credential)
        verified = verify_registration_response(credential=parsed, **params)
    except Exception as exc:  # library boundary: py_webauthn, cbor2, pyasn1, cryptography
        raise PasskeyError("invalid_registration", f"{type(exc).__name__}: {exc}") from exc
    if len(verified.credential_id) > MAX_CREDENTIAL_ID_BYTES:  # py_webauthn does not check it
        raise PasskeyError("invalid_registration", f"credential id longer than {MAX_CREDENTIAL_ID_BYTES} bytes")
    transports = [
        t.value if isinstance(t, AuthenticatorTransport) else str(t) for t in parsed.response.transports or []
    ]
    return verified, transports


# --- authentication (WebAuthn L3 §7.2) -----------------------------------------------------
def authentication_options(allow: list[tuple[str, list[str]]], challenge: bytes) -> str:
    """Request options; ``allow`` empty for discoverable credentials (passwordless, autofill)."""
    descriptors = [
        PublicKeyCredentialDescriptor(
            id=base64url_to_bytes(cred_id),
            transports=[AuthenticatorTransport(t) for t in transports if t in _TRANSPORTS] or None,
        )
        for cred_id, transports in allow
    ]
    options = generate_authentication_options(
        rp_id=app_settings.WEBAUTHN_RP_ID,
        challenge=challenge,
        timeout=app_settings.WEBAUTHN_CHALLENGE_SECONDS * 1000,
        allow_credentials=descriptors,
        user_verification=UserVerificationRequirement.REQUIRED,
    )
    return options_to_json(options)


_TRANSPORTS = {t.value for t in AuthenticatorTransport}


def parse_assertion(credential: Any) -> AuthenticationCredential:
    try:
        return parse_authentication_credential_json(credential)
    except Exception as exc:  # library boundary
        raise PasskeyError("malformed_assertion", f"{type(exc).__name__}: {exc}") from exc


def verify_assertion(
    parsed: AuthenticationCredential, challenge: bytes, public_key: bytes, **overrides: Any
) -> VerifiedAuthentication:
    """Signature, challenge, origin, RP ID, UP and UV checks (§7.2 steps 11-21).

    The sign count is passed as 0 so the caller judges regressions itself, under a row lock
    and with its own security event (§7.2 step 22).
    """
    params: dict[str, Any] = {
        "expected_challenge": challenge,
        "expected_rp_id": app_settings.WEBAUTHN_RP_ID,
        "expected_origin": app_settings.WEBAUTHN_ALLOWED_ORIGINS,
        "credential_public_key": public_key,
        "credential_current_sign_count": 0,
        "require_user_verification": True,
    }
    params.update(overrides)
    try:
        return verify_authentication_response(credential=parsed, **params)
    except Exception as exc:  # library boundary
        raise PasskeyError("invalid_assertion", f"{type(exc).__name__}: {exc}") from exc


def sign_count_regressed(stored: int, received: int) -> bool:
    """§6.1.1: a counter that does not increase (when either is non-zero) signals a clone."""
    return (stored > 0 or received > 0) and received <= stored


def credential_id_b64(parsed: AuthenticationCredential) -> str:
    return b64url_encode(parsed.raw_id)


def aaguid_text(value: Any) -> str:
    return str(value or "")[:36]


def fingerprint(value: bytes) -> str:
    """Short, non-reversible id of a credential for logs."""
    return b64url_encode(hashlib.sha256(value).digest()[:9])  # 9 bytes: never padded
