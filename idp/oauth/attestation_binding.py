"""Device attestation at the token endpoint (docs/attestation.md §3; IETF draft OAuth 2.0
Attestation-Based Client Authentication for the challenge header and error codes).

Errors carry a fresh challenge in ``OAuth-Client-Attestation-Challenge`` so the app can
retry without another round trip; successful responses of attested sessions carry the
next refresh challenge the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

from authlib.oauth2.rfc6749.errors import InvalidGrantError
from django.utils import timezone

from attestation.app_settings import app_settings as attestation_settings
from attestation.errors import SERVICE_OUTAGE, STALE_CHALLENGE, AttestationError, Reason
from attestation.flows.challenges import issue_challenge
from attestation.models import ChallengePurpose, Device
from attestation.oauth_errors import CHALLENGE_HEADER, USE_ATTESTATION_CHALLENGE, oauth_error_code
from core.app_settings import app_settings as core_settings
from core.cache import ReadAhead, reading_ahead, settle_first
from core.deferred_write import DeferredWrite
from core.events import EventType, Outcome, record
from sessions.flows import device_binding, revocation
from sessions.flows.refresh import Refusal
from sessions.models import DeviceSession

from .errors import (
    InvalidClientAttestationError,
    SlowDownError,
    TemporarilyUnavailableError,
    UseAttestationChallengeError,
)

if TYPE_CHECKING:
    from clients.models import Client

FAMILY_REVOKING = {Reason.DEVICE_MISMATCH, Reason.DEVICE_REVOKED}
#: Evidence missing (not failing): a fresh challenge, no failure counted.
NOTHING_TO_VERIFY = {Reason.ATTESTATION_REQUIRED, Reason.INTEGRITY_TOKEN_REQUIRED}
#: What each service outage (``attestation.errors.SERVICE_OUTAGE``) is called in its 503, and
#: the ``Retry-After`` it carries.
_OUTAGE_ANSWERS: dict[str, tuple[str, Callable[[], int]]] = {
    Reason.DEVICECHECK_UNAVAILABLE: ("Apple's DeviceCheck service is unavailable",
                                     lambda: attestation_settings.DEVICECHECK_RETRY_AFTER),
    Reason.INTEGRITY_API_UNAVAILABLE: ("Google's Play Integrity API is unavailable",
                                       lambda: attestation_settings.PLAY_INTEGRITY_RETRY_AFTER),
    Reason.REVOCATION_LIST_UNAVAILABLE: ("The attestation certificate revocation list is unavailable",
                                         lambda: max(1, core_settings.OUTAGE_RETRY_AFTER_SECONDS)),
}


def _challenge_header(client: Client, purpose: str) -> list[tuple[str, str]]:
    return [(CHALLENGE_HEADER, issue_challenge(client, purpose).value)]


def _refuse(client: Client, error: AttestationError, purpose: str, *, with_challenge: bool = True) -> Exception:
    headers = _challenge_header(client, purpose) if with_challenge else []
    description = f"Device attestation failed: {error.reason}."
    if error.reason in SERVICE_OUTAGE:  # fail closed, and retry later: nothing was held against the device
        what, retry_after = _OUTAGE_ANSWERS[error.reason]
        return TemporarilyUnavailableError(
            f"{what} ({error.reason}); retry after Retry-After with a fresh challenge from the {CHALLENGE_HEADER} "
            "header.", headers=[("Retry-After", str(retry_after())), *headers])
    if oauth_error_code(error.reason) == USE_ATTESTATION_CHALLENGE:
        return UseAttestationChallengeError(description, headers=headers)
    return InvalidClientAttestationError(description, headers=headers)


def enroll_at_code_exchange(grant: Any, code: str) -> Device | None:
    """Verify the enrollment attestation of a code exchange; None when the client needs none."""
    request = grant.request
    client = request.client
    try:
        evidence = device_binding.evidence_from_form(request.form)
        if evidence is None:
            if not device_binding.client_requires_attestation(client):
                return None
            raise AttestationError(Reason.ATTESTATION_REQUIRED, "this client requires device attestation")
        device = device_binding.enroll(
            client, evidence, code=code, dpop_jkt=request.context.dpop_jkt, now=timezone.now(),
            request=request.django_request, dpop_jwk=request.context.dpop_jwk,
        )
    except AttestationError as error:
        record(EventType.ATTESTATION_TOKEN_REFUSED, outcome=Outcome.DENIED, reason=error.reason,
               client_id=client.client_id, request=request.django_request, grant_type="authorization_code")
        if error.reason in NOTHING_TO_VERIFY:
            raise UseAttestationChallengeError(
                _what_is_required(error, "This client requires device attestation: attest with", enrolling=True),
                headers=_challenge_header(client, ChallengePurpose.ENROLL),
            ) from error
        raise _refuse(client, error, ChallengePurpose.ENROLL) from error
    if not device.attested:  # attestation is offered again at once (docs/unattested-devices.md)
        request.context.extra_headers.extend(_challenge_header(client, ChallengePurpose.ENROLL))
        return device
    request.context.device_signals = evidence.signals  # verified: covered by the attested binding
    request.context.extra_headers.extend(_challenge_header(client, ChallengePurpose.REFRESH))
    return device


def verify_at_refresh(grant: Any, session: DeviceSession, refresh_token: str, *, defer_write: bool = False) -> None:
    """Demand fresh evidence from the session's device over this exact refresh request. With
    ``defer_write`` (``sessions.flows.rotation_statement.carries_device_write``), a good proof leaves the
    device's write to the rotation (``context.device_write``), refused there as here."""
    request = grant.request
    client = request.client
    device = session.device  # no query when the session has no device
    if device is None or device.requires_reattestation or not device.attested:
        settle_first()  # these refuse, count or record before any claim: the DPoP proof's jti first
    if device is None:
        if device_binding.client_requires_attestation(client):
            raise InvalidGrantError("This session is not bound to an attested device: authorize again.")
        return
    if device.requires_reattestation:  # an operator's demand; an unattested device signs in again
        record(
            EventType.ATTESTATION_TOKEN_REFUSED,
            outcome=Outcome.DENIED,
            reason=revocation.Reason.REATTESTATION_REQUIRED,
            user=session.user,
            client_id=client.client_id,
            session_id=session.sid,
            request=request.django_request,
        )
        revocation.revoke_session(session, revocation.Reason.REATTESTATION_REQUIRED)
        raise InvalidGrantError("The device must attest again: send the user through authorization.")
    if not device.attested:
        _unattested_refresh(grant, session, refresh_token)
        return
    deferred: list[DeferredWrite] | None = [] if defer_write else None
    try:
        evidence = device_binding.evidence_from_form(request.form)
        if evidence is None:
            raise AttestationError(Reason.ATTESTATION_REQUIRED, "fresh attestation is required on every refresh")
        # The failure streak is read with the challenge's claim, one round trip (core.cache).
        with reading_ahead(device_binding.failures_key(session)) as streak:
            device_binding.verify_refresh(
                session,
                evidence,
                refresh_token=refresh_token,
                dpop_jkt=request.context.dpop_jkt,
                now=timezone.now(),
                request=request.django_request,
                deferred=deferred,
            )
    except AttestationError as error:
        _on_refresh_failure(grant, session, error)
    request.context.device_signals = evidence.signals  # verified: covered by the attested binding
    _after_good_proof(grant, session, streak, _refused_as_proof(grant, session, deferred[0]) if deferred else None)


def _after_good_proof(grant: Any, session: DeviceSession, streak: ReadAhead, write: DeferredWrite | None) -> None:
    """End the failure streak, hand out the next challenge and leave the deferred ``write`` to
    the rotation; it is done here first when there is a streak to end (its refusal grows the
    streak) or when this fails (e.g. the cache is down: the write still happens, once)."""
    request = grant.request
    try:
        request.context.attestation_failures = device_binding.take_failures(
            session, streak, settle=write.settle if write is not None else None)
        request.context.extra_headers.extend(_challenge_header(request.client, ChallengePurpose.REFRESH))
    except Exception:
        if write is not None:
            write.settle()
        raise
    request.context.device_write = write


def _refused_as_proof(grant: Any, session: DeviceSession, write: DeferredWrite) -> DeferredWrite:
    """``write``, whose refusal (whenever the rotation settles it) is answered as a refusal of
    the proof: the same event, failure streak, revocation and fresh challenge."""
    alone = write.run

    def run() -> None:
        try:
            alone()
        except AttestationError as error:
            _on_refresh_failure(grant, session, error)

    write.run = run
    return write


def _what_is_required(error: AttestationError, missing_everything: str, *, enrolling: bool) -> str:
    """The ``use_attestation_challenge`` description: the precise missing part when only the
    Play Integrity token is missing, else what the client must send."""
    if error.reason == Reason.INTEGRITY_TOKEN_REQUIRED:
        when = (
            "to enroll"
            if enrolling
            else ("on this refresh: the last verdict is older than the app's play_integrity_max_age_minutes")
        )
        missing_everything = f"A Play Integrity token (integrity_token) is required {when}; send one with"
    return f"{missing_everything} the challenge in the {CHALLENGE_HEADER} header."


def _on_refresh_failure(
    grant: Any, session: DeviceSession, error: AttestationError, purpose: str = ChallengePurpose.REFRESH
) -> NoReturn:
    request = grant.request
    client = request.client
    record(
        EventType.ATTESTATION_TOKEN_REFUSED,
        outcome=Outcome.DENIED,
        reason=error.reason,
        user=session.user,
        client_id=client.client_id,
        session_id=session.sid,
        request=request.django_request,
        grant_type="refresh_token",
    )
    if error.reason in NOTHING_TO_VERIFY:
        raise UseAttestationChallengeError(
            _what_is_required(error, _MISSING[purpose], enrolling=False),
            headers=_challenge_header(client, purpose),
        ) from error
    if error.reason in SERVICE_OUTAGE:  # an outage proves nothing against the device: retry later
        raise _refuse(client, error, purpose) from error
    revoke = error.reason in FAMILY_REVOKING
    if not revoke and error.reason not in STALE_CHALLENGE:  # a retry's stale challenge: not the device's failure
        revoke = device_binding.failure_limit_reached(device_binding.register_failure(session))
    if revoke:
        mismatch = error.reason in FAMILY_REVOKING
        reason = revocation.Reason.ATTESTATION_DEVICE_MISMATCH if mismatch else revocation.Reason.ATTESTATION_FAILURES
        revocation.revoke_session(session, reason, attestation_reason=error.reason)
        raise InvalidGrantError(f"Device attestation failed ({error.reason}); the session is revoked.") from error
    raise _refuse(client, error, purpose) from error


_MISSING: dict[str, str] = {
    ChallengePurpose.REFRESH: "Fresh device attestation is required on every refresh: use",
    ChallengePurpose.ENROLL: "This session's device is unattested: to upgrade it, attest a new key (attestKey / "
    "Key Attestation) over",
}


# --- the fallback for devices that cannot attest (docs/unattested-devices.md) ---------------------
def _unattested_refresh(grant: Any, session: DeviceSession, refresh_token: str) -> None:
    """A session of an unattested device: its DPoP key (checked before, ``bound_jkt``) is all
    it proves; tighter rate; attestation offered again (an ``enroll`` challenge); a refresh
    carrying an enrollment attestation upgrades the family to the attested device."""
    request = grant.request
    try:
        assert session.device is not None
        session.device.check_usable()  # suspended by an operator: refused, as an attested device is
        evidence = device_binding.evidence_from_form(request.form)
        if evidence is not None and not evidence.unattested:
            # Not throttled: only evidence that verifies issues anything, and leaving the
            # fallback is what the limit is there to encourage (a failure still counts).
            _upgrade(grant, session, evidence, refresh_token)
            return
    except AttestationError as error:
        _on_refresh_failure(grant, session, error, ChallengePurpose.ENROLL)
    _throttle(grant, session)
    request.context.attestation_failures = device_binding.current_failures(session)
    request.context.extra_headers.extend(_challenge_header(request.client, ChallengePurpose.ENROLL))


def _upgrade(grant: Any, session: DeviceSession, evidence: device_binding.Evidence, refresh_token: str) -> None:
    request = grant.request
    device = session.device
    assert device is not None
    if not device_binding.is_enrollment(evidence):
        raise AttestationError(Reason.ATTESTATION_REQUIRED, "an unattested session upgrades with an enrollment")
    if device_binding.TYPES[evidence.kind] != device.platform:
        raise AttestationError(Reason.DEVICE_MISMATCH, f"this session's device is a {device.platform} device")
    attested = device_binding.enroll(
        request.client, evidence, code=refresh_token, dpop_jkt=request.context.dpop_jkt, now=timezone.now(),
        request=request.django_request, grant="refresh_token",
    )
    request.context.upgraded_from, session.device = device, attested  # the policies judge the new device
    request.context.device_signals = evidence.signals  # verified: covered by the attested binding
    request.context.attestation_failures = device_binding.take_failures(session)
    request.context.extra_headers.extend(_challenge_header(request.client, ChallengePurpose.REFRESH))


def _throttle(grant: Any, session: DeviceSession) -> None:
    """``SESSIONS_UNATTESTED_REFRESH_LIMIT`` refreshes per window and session; recorded when refused."""
    request = grant.request
    retry_after = device_binding.unattested_refresh_throttled(session, timezone.now())
    if retry_after is None:
        return
    record(EventType.OAUTH_REFRESH_REFUSED, outcome=Outcome.DENIED, reason=Refusal.UNATTESTED_RATE_LIMITED,
           user=session.user, client_id=request.client.client_id, session_id=session.sid,
           request=request.django_request)
    raise SlowDownError("Too many refreshes for a device that did not attest: retry later.",
                        headers=[("Retry-After", str(retry_after))])
