"""The FAPI 2.0 Security Profile (final, February 2025) as a per-client profile: the rules
that are not already a client flag. The full checklist, each rule with its test, is
docs/fapi.md.

Flags the profile turns on (``clients.models.Client``): pushed requests only
(``par_required``, §5.3.2.2), PKCE S256 (``pkce_required``, §5.3.2.2), DPoP-bound tokens
(``dpop_required``, §5.3.2.1); registration (``clients.profiles``) admits only confidential
clients with ``private_key_jwt`` and ES256 tokens (§5.3.2.1, §5.4.1). Here:

- client assertions name only our issuer as ``aud`` (§5.3.2.1) and are signed with ES256 or
  PS256 (§5.4.1), as are request objects (``idp.oauth.request_object``);
- DPoP proofs are signed with ES256 or PS256 too (§5.4.1);
- a pushed request names its ``redirect_uri`` (§5.3.2.2);
- authorization codes live at most 60 seconds (§5.3.2.1).
"""

from __future__ import annotations

from typing import Any

from authlib.common.encoding import json_loads, to_bytes, urlsafe_b64decode
from authlib.oauth2.rfc6749.errors import InvalidRequestError

from clients.models import FAPI2_ALGS, Client
from core.app_settings import app_settings
from sessions.dpop import DPoPError
from sessions.dpop.errors import Reason

#: FAPI 2.0 §5.3.2.1: "shall issue authorization codes with a maximum lifetime of 60 seconds".
FAPI2_CODE_LIFETIME = 60


def code_lifetime(client: Client) -> int:
    lifetime = app_settings.AUTHORIZATION_CODE_LIFETIME
    return min(lifetime, FAPI2_CODE_LIFETIME) if client.is_fapi2 else lifetime


def assertion_algorithms(client: Client, default: list[str]) -> list[str]:
    return list(FAPI2_ALGS) if client.is_fapi2 else default


def assertion_audiences(client: Client, default: list[str]) -> list[str]:
    """FAPI 2.0 §5.3.2.1: "shall only accept its issuer identifier value ... as a string in the
    aud claim received in client authentication assertions"."""
    return [app_settings.ISSUER] if client.is_fapi2 else default


def check_pushed(client: Client, params: dict[str, Any]) -> None:
    """FAPI 2.0 §5.3.2.2: "shall require the redirect_uri parameter in pushed authorization requests"."""
    if client.is_fapi2 and not params.get("redirect_uri"):
        raise InvalidRequestError("A FAPI 2.0 client names its redirect_uri in the pushed request.")


def check_dpop_alg(client: Client, proof_jwt: str) -> None:
    """FAPI 2.0 §5.4.1 for DPoP proofs; a malformed proof is left to ``verify_proof`` to describe."""
    if not client.is_fapi2:
        return
    try:  # the header alone (an RSA key's JWK exceeds joserfc's default header size for extract_compact)
        header = json_loads(urlsafe_b64decode(to_bytes(proof_jwt.split(".", 1)[0])))
    except (ValueError, TypeError, UnicodeError, RecursionError):  # RecursionError: JSON nested too deep
        return
    alg = header.get("alg") if isinstance(header, dict) else None
    if alg not in FAPI2_ALGS:
        raise DPoPError.invalid(Reason.BAD_ALG, f"A FAPI 2.0 client signs DPoP proofs with {' or '.join(FAPI2_ALGS)}.")
