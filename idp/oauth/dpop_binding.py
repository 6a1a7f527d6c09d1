"""DPoP at the token endpoint (RFC 9449 §5): verify the proof, bind the access token
(``cnf.jkt``) and, for public clients, the refresh-token family to the proof's key."""

from __future__ import annotations

from typing import Any, NoReturn

from django.utils import timezone

from core.app_settings import app_settings
from core.cache import FirstClaim
from core.events import EventType, Outcome, record
from sessions.app_settings import app_settings as sessions_settings
from sessions.dpop import DPoPError, dpop_header_values, issue_nonce, single_proof_from_headers, verify_proof
from sessions.dpop.errors import ErrorCode, Reason
from sessions.dpop.proof import replay_mark, replayed
from sessions.dpop.replay import replay_cache

from . import fapi
from .errors import InvalidDPoPProofError, UseDPoPNonceError


def _as_oauth_error(error: DPoPError) -> InvalidDPoPProofError | UseDPoPNonceError:
    headers = list(error.nonce_headers().items())
    cls = UseDPoPNonceError if error.error == ErrorCode.USE_DPOP_NONCE else InvalidDPoPProofError
    return cls(error.description, headers=headers)


def check_token_request(grant: Any, *, bound_jkt: str = "", replay_first: bool = False) -> str | None:
    """Verify the request's DPoP proof; returns its key thumbprint (or None without a proof).

    ``bound_jkt``: the key a refresh-token family is bound to; the proof must use it.
    ``replay_first``: the proof's ``jti`` is not marked here but returned in ``context.dpop_replay``
    (``core.cache.claiming_first``: marked with the attestation challenge's claim, in one round
    trip, and before anything the request records); a replay is refused exactly as here.
    """
    request = grant.request
    client = request.client
    now = timezone.now()
    try:
        proof_jwt = single_proof_from_headers(dpop_header_values(request.django_request))
        if proof_jwt is None:
            if client.dpop_required() or bound_jkt:
                raise DPoPError.invalid(Reason.MISSING, "A DPoP proof is required for this client.")
            return None
        fapi.check_dpop_alg(client, proof_jwt)
        proof = verify_proof(
            proof_jwt,
            method="POST",
            url=f"{app_settings.ISSUER}/token",
            nonce_required=sessions_settings.DPOP_NONCE_REQUIRED,
            expected_jkt=bound_jkt or None,
            now=now,
            remember=not replay_first,
        )
    except DPoPError as error:
        _refuse(grant, error)
    if replay_first:
        key, timeout = replay_mark(proof, now)
        request.context.dpop_replay = FirstClaim(replay_cache(), key, timeout, lambda: _refuse(grant, replayed()))
    request.context.dpop_jkt = proof.jkt
    request.context.dpop_jwk = proof.jwk
    request.context.extra_headers.append(("DPoP-Nonce", issue_nonce()))
    return proof.jkt


def check_pushed_request(request: Any, client: Any) -> str | None:
    """RFC 9449 §10.1: a DPoP proof sent to ``/par`` (htu ``{issuer}/par``) is verified like one
    at the token endpoint and binds the code as ``dpop_jkt`` would; returns its key thumbprint,
    or None without a proof (FAPI 2.0's algorithms apply to it too)."""
    try:
        proof_jwt = single_proof_from_headers(dpop_header_values(request.django_request))
        if proof_jwt is None:
            return None
        fapi.check_dpop_alg(client, proof_jwt)
        proof = verify_proof(proof_jwt, method="POST", url=f"{app_settings.ISSUER}/par",
                             nonce_required=sessions_settings.DPOP_NONCE_REQUIRED, now=timezone.now())
    except DPoPError as error:
        _record_refusal(request, client, error)
        raise _as_oauth_error(error) from error
    return proof.jkt


def _refuse(grant: Any, error: DPoPError) -> NoReturn:
    request = grant.request
    _record_refusal(request, request.client, error)
    raise _as_oauth_error(error) from error


def _record_refusal(request: Any, client: Any, error: DPoPError) -> None:
    record(
        EventType.DPOP_REFUSED,
        outcome=Outcome.DENIED,
        reason=error.reason or error.error,
        client_id=client.client_id,
        request=request.django_request,
    )
