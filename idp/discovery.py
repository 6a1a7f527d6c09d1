"""Discovery metadata (OIDC Discovery 1.0 §3, RFC 8414 §2): every field is what the server does.

``idp/tests/test_discovery_truth.py`` tries each advertised value against the server.
Not advertised because not done: signed or encrypted userinfo (``userinfo_signing_alg_values_supported``
is left out, so clients get plain JSON), encrypted request objects. A ``request_uri`` is one
issued by ``/par`` (RFC 9126 §4) or an https URL the client registered
(``require_request_uri_registration``); nothing else is fetched.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from core.acr import ACR_VALUES_SUPPORTED
from core.app_settings import app_settings
from sessions.app_settings import app_settings as sessions_settings

from .flows.authorize_params import PROMPTS_SUPPORTED, RESPONSE_MODES_SUPPORTED
from .oauth.client_auth import ASSERTION_ALGS
from .oauth.grants.device_code import DEVICE_CODE
from .oauth.grants.token_exchange import TOKEN_EXCHANGE
from .oauth.request_object import REQUEST_OBJECT_ALGS
from .oauth.resources import userinfo_endpoint


def metadata() -> dict[str, Any]:
    issuer = app_settings.ISSUER
    algs = app_settings.SUPPORTED_SIGNING_ALGS
    auth_methods = ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"]
    return {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/authorize",
        "token_endpoint": f"{issuer}/token",
        "pushed_authorization_request_endpoint": f"{issuer}/par",
        "require_pushed_authorization_requests": app_settings.REQUIRE_PUSHED_AUTHORIZATION_REQUESTS,
        "userinfo_endpoint": userinfo_endpoint(),  # also its resource identifier (RFC 8707)
        "jwks_uri": f"{issuer}/jwks.json",
        "introspection_endpoint": f"{issuer}/introspect",
        "revocation_endpoint": f"{issuer}/revoke",
        "end_session_endpoint": f"{issuer}/logout",
        "challenge_endpoint": f"{issuer}/attestation/challenge",
        "scopes_supported": app_settings.SCOPES_SUPPORTED,
        "response_types_supported": ["code"],
        "response_modes_supported": RESPONSE_MODES_SUPPORTED,
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials", DEVICE_CODE,
                                  TOKEN_EXCHANGE],
        "device_authorization_endpoint": f"{issuer}/device_authorization",
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": algs,
        "token_endpoint_auth_methods_supported": auth_methods,
        # What the private_key_jwt authenticator accepts; RFC 8414 §2 requires the list for every
        # endpoint that advertises private_key_jwt.
        "token_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGS),
        "introspection_endpoint_auth_methods_supported": auth_methods[:3],
        "introspection_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGS),
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "revocation_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGS),
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": [
            "sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "sid", "at_hash", "azp",
            "name", "given_name", "family_name", "preferred_username", "email", "email_verified",
        ],
        "claims_parameter_supported": False,
        "request_parameter_supported": True,
        "request_uri_parameter_supported": True,
        "require_request_uri_registration": True,
        "request_object_signing_alg_values_supported": list(REQUEST_OBJECT_ALGS),
        "require_signed_request_object": False,
        "acr_values_supported": ACR_VALUES_SUPPORTED,
        "prompt_values_supported": PROMPTS_SUPPORTED,
        "ui_locales_supported": [code for code, _name in settings.LANGUAGES],  # the pages' languages
        "authorization_response_iss_parameter_supported": True,
        "resource_indicators_supported": True,
        "dpop_signing_alg_values_supported": sessions_settings.DPOP_ALGS,
        "backchannel_logout_supported": True,
        "backchannel_logout_session_supported": True,
        "frontchannel_logout_supported": False,
    }
