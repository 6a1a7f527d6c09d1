"""What a client's security profile demands of its registration.

FAPI 2.0 Security Profile (final), §5.3.2.1 and §5.4.1: a confidential client that
authenticates with ``private_key_jwt`` only (Vigil offers no mutual TLS), https redirect URIs, and tokens signed
with ES256 (Vigil's ID and access tokens offer ES256 among the profile's algorithms). What the
profile demands of each request (PAR, PKCE S256, DPoP, 60 s codes) is enforced at the
request, by ``Client.par_required`` / ``pkce_required`` / ``dpop_required`` and
``idp/oauth/fapi.py``.
"""

from __future__ import annotations

from collections.abc import Sequence

from .models import FAPI2_ALGS, AuthMethod, ClientProfile


def profile_problem(
    profile: str, public: bool, methods: Sequence[str], signing_alg: str, redirect_uris: Sequence[str] = ()
) -> str | None:
    """Why this registration does not fit ``profile``, or ``None``."""
    if profile not in ClientProfile.values:
        return f"unknown profile {profile!r}; use {', '.join(ClientProfile.values)}"
    if profile != ClientProfile.FAPI2:
        return None
    if public:
        return "the FAPI 2.0 profile needs a confidential client (FAPI 2.0 section 5.3.2.1)"
    if list(methods) != [AuthMethod.PRIVATE_KEY_JWT]:
        return "a FAPI 2.0 client authenticates with private_key_jwt only (FAPI 2.0 section 5.3.2.1)"
    if any(not str(uri).startswith("https://") for uri in redirect_uris):
        return "a FAPI 2.0 client's redirect URIs use https (FAPI 2.0 section 5.3.2.2: no unencrypted responses)"
    if signing_alg not in FAPI2_ALGS:
        return f"a FAPI 2.0 client's tokens are signed with {' or '.join(FAPI2_ALGS)} (FAPI 2.0 section 5.4.1)"
    return None


def request_uris_problem(uris: Sequence[object]) -> str | None:
    """OIDC Dynamic Client Registration §2 ``request_uris``: https URLs Vigil may fetch, exact."""
    for uri in uris:
        if not isinstance(uri, str) or not uri.startswith("https://") or len(uri) > 2000 or "#" in uri \
                or any(c.isspace() for c in uri):
            return f"request URI {str(uri)[:100]!r} must be an https URL without fragment or spaces"
    return None
