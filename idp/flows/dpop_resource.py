"""DPoP-bound access tokens at our resource endpoints (RFC 9449 §7): the request must use
the ``DPoP`` scheme with a proof over this request, carrying ``ath``, by the key in ``cnf.jkt``."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from core.app_settings import app_settings
from core.resource_errors import ResourceError, ResourceErrorCode
from sessions.app_settings import app_settings as sessions_settings
from sessions.dpop import DPoPError, dpop_header_values, single_proof_from_headers, verify_proof
from sessions.dpop.errors import Reason


def check_dpop_binding(request: HttpRequest, scheme: str, token: str, claims: dict[str, Any]) -> None:
    cnf = claims.get("cnf") if isinstance(claims.get("cnf"), dict) else {}
    jkt = cnf.get("jkt") if cnf else None
    if not jkt:
        raise ResourceError(
            ResourceErrorCode.INVALID_TOKEN, "This token is not DPoP-bound; use the Bearer scheme.", 401, "DPoP"
        )
    if scheme != "dpop":
        raise ResourceError(
            ResourceErrorCode.INVALID_TOKEN, "This token is DPoP-bound; use the DPoP scheme with a proof.", 401, "DPoP"
        )
    try:
        proof_jwt = single_proof_from_headers(dpop_header_values(request))
        if proof_jwt is None:
            raise DPoPError.invalid(Reason.MISSING, "A DPoP proof is required.")
        verify_proof(
            proof_jwt,
            method=request.method or "GET",
            url=f"{app_settings.ISSUER}{request.path}",
            access_token=token,
            nonce_required=sessions_settings.DPOP_NONCE_REQUIRED,
            expected_jkt=jkt,
        )
    except DPoPError as error:
        raise ResourceError(error.error, error.description, 401, "DPoP", headers=error.nonce_headers()) from error
