"""Client authentication at the token, introspection and revocation endpoints.

One request carries one method (RFC 6749 §2.3): ``Authorization: Basic``
(``client_secret_basic``, RFC 6749 §2.3.1), ``client_secret`` in the body
(``client_secret_post``), a ``client_assertion`` (``private_key_jwt``, RFC 7523 §2.2, OIDC
Core §9) or only ``client_id`` (``none``, a public client). The method sent must be one the
client registered (a client may register several): a mismatch names the registered methods
and the one sent; a wrong secret or signature stays generic. Every refusal is an
``invalid_client`` (401) or ``invalid_request`` JSON body, never a 500, and is recorded by
``AuthorizationServer.handle_error_response`` with the reason carried here.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any, cast

from authlib.common.encoding import json_loads
from authlib.oauth2.base import invalid_error_characters
from authlib.oauth2.rfc6749.errors import InvalidClientError, InvalidRequestError
from django.core.cache import cache
from django.utils import timezone
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, KeySetSerialization

from clients.models import AuthMethod, Client, ClientEndpoint
from core import config_cache
from core.app_settings import app_settings
from core.http_basic import MalformedBasic, parse_basic

from . import fapi

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_ALGS = ["ES256", "RS256", "PS256", "EdDSA"]
ENDPOINT_PATHS = {
    ClientEndpoint.TOKEN: "/token",
    ClientEndpoint.INTROSPECTION: "/introspect",
    ClientEndpoint.REVOCATION: "/revoke",
    ClientEndpoint.USAGE: "/usage",
    ClientEndpoint.PAR: "/par",
}
CREDENTIAL_PARAMETERS = ("client_id", "client_secret", "client_assertion", "client_assertion_type")
GENERIC_FAILURE = "Client authentication failed."
_CLIENT_ID = re.compile(r"[^\x00-\x1f\x7f]{1,100}")  # RFC 6749 Appendix A.1 (and UTF-8)


class AuthFailure(str, Enum):
    """Why client authentication failed (the ``auth_failure`` of the error event)."""

    MISSING = "missing_credentials"
    MALFORMED_BASIC = "malformed_basic"
    MULTIPLE_METHODS = "multiple_methods"
    CLIENT_ID_MISMATCH = "client_id_mismatch"
    UNKNOWN_CLIENT = "unknown_client"
    METHOD_MISMATCH = "method_mismatch"
    METHOD_NOT_ALLOWED_HERE = "method_not_allowed_here"
    WRONG_SECRET = "wrong_secret"
    BAD_ASSERTION = "bad_assertion"
    NO_CLIENT_KEYS = "no_client_keys"
    ASSERTION_REPLAY = "assertion_replay"


class ClientAuthError(InvalidClientError):
    """``invalid_client`` (RFC 6749 §5.2), always 401 with a ``WWW-Authenticate`` challenge,
    carrying the failure reason and the client it named for the security event."""

    def __init__(self, reason: AuthFailure, description: str = GENERIC_FAILURE, client_id: str = ""):
        super().__init__(description=printable(description), status_code=401)
        self.auth_failure = reason
        self.auth_client_id = client_id


class ClientAuthRequestError(InvalidRequestError):
    """``invalid_request``: more than one method, or a credential parameter repeated."""

    def __init__(self, description: str):
        super().__init__(description=description)
        self.auth_failure = AuthFailure.MULTIPLE_METHODS
        self.auth_client_id = ""


def printable(text: str) -> str:
    """RFC 6749 §5.2: error_description is limited to %x20-21 / %x23-5B / %x5D-7E."""
    bad = set(invalid_error_characters(text))
    return "".join("'" if c == '"' else "?" if c in bad else c for c in text)


@dataclass(frozen=True)
class Presented:
    """What the request presents: one method, the client it names, its credential."""

    method: AuthMethod
    client_id: str
    secret: str = ""
    assertion: str = ""


# --- what the request presents ------------------------------------------------------------
def presented_credentials(request: Any) -> Presented | None:
    """The one method the request uses, or ``None`` when it names no client at all."""
    form = _single_form(request)
    found = [p for p in (_from_basic(request), _from_assertion(form), _from_post(form)) if p is not None]
    if len(found) > 1:
        raise ClientAuthRequestError("Use one client authentication method per request (RFC 6749 section 2.3).")
    body_id = form.get("client_id") or ""
    if not found:
        return Presented(AuthMethod.NONE, body_id) if body_id else None
    presented = found[0]
    if body_id and body_id != presented.client_id:
        raise ClientAuthError(AuthFailure.CLIENT_ID_MISMATCH, "client_id does not match the authenticated client.")
    return presented


def _single_form(request: Any) -> dict[str, str]:
    datalist = request.payload.datalist
    for name in CREDENTIAL_PARAMETERS:
        if len(datalist.get(name, [])) > 1:
            raise ClientAuthRequestError(f"The {name} parameter is repeated (RFC 6749 section 3.2).")
    return {name: str(request.form.get(name) or "") for name in CREDENTIAL_PARAMETERS}


def _from_basic(request: Any) -> Presented | None:
    try:
        credentials = parse_basic(request.headers.get("Authorization"))
    except MalformedBasic as malformed:
        raise ClientAuthError(
            AuthFailure.MALFORMED_BASIC,
            f"Malformed Basic credentials ({malformed.problem.value}): send base64 of the form-urlencoded "
            "client_id:client_secret (RFC 6749 section 2.3.1).",
        ) from None
    if credentials is None:
        return None
    return Presented(AuthMethod.SECRET_BASIC, credentials.client_id, secret=credentials.secret)


def _from_post(form: dict[str, str]) -> Presented | None:
    if not form["client_secret"]:
        return None
    if not form["client_id"]:
        raise ClientAuthError(AuthFailure.MISSING, "client_secret_post needs client_id in the body.")
    return Presented(AuthMethod.SECRET_POST, form["client_id"], secret=form["client_secret"])


def _from_assertion(form: dict[str, str]) -> Presented | None:
    if not form["client_assertion"] and not form["client_assertion_type"]:
        return None
    if form["client_assertion_type"] != ASSERTION_TYPE or not form["client_assertion"]:
        raise ClientAuthError(
            AuthFailure.BAD_ASSERTION, f"Send client_assertion with client_assertion_type={ASSERTION_TYPE}."
        )
    return Presented(AuthMethod.PRIVATE_KEY_JWT, assertion_subject(form["client_assertion"]),
                     assertion=form["client_assertion"])


def assertion_subject(assertion: str) -> str:
    """The unverified ``sub`` of an assertion: only to find the client whose keys verify it."""
    try:
        claims = json_loads(jws.extract_compact(assertion.encode("utf-8", "surrogatepass")).payload)
    except (JoseError, ValueError, TypeError, UnicodeError, RecursionError):  # RecursionError: JSON nested too deep
        raise ClientAuthError(AuthFailure.BAD_ASSERTION, "The client assertion is not a JWT.") from None
    subject = claims.get("sub") if isinstance(claims, dict) else None
    if not isinstance(subject, str) or not subject:
        raise ClientAuthError(AuthFailure.BAD_ASSERTION, "The client assertion has no sub.")
    return subject


# --- private_key_jwt ----------------------------------------------------------------------
#: ``typ`` a client assertion may carry: none (RFC 7523), ``JWT``, or draft-ietf-oauth-rfc7523bis
#: ``client-authentication+jwt``; any other names another kind of JWT signed by the same key.
ASSERTION_TYPS = frozenset({"jwt", "client-authentication+jwt"})
#: Claims only an authorization request carries (RFC 6749 §4.1.1): a JWT with one is a request object.
REQUEST_OBJECT_CLAIMS = frozenset({"response_type", "redirect_uri"})


def is_client_assertion(header: dict[str, Any], claims: dict[str, Any]) -> bool:
    """RFC 9101 §10.8, RFC 8725 §3.11: a request object is signed with the same key, names us
    as ``aud`` and may carry ``sub`` and ``jti``; it travels through the browser, so it must
    never pass for the client's assertion. Told apart by its explicit ``typ`` or its
    authorization request parameters."""
    typ = header.get("typ")
    if typ is not None and (not isinstance(typ, str) or typ.lower().removeprefix("application/") not in ASSERTION_TYPS):
        return False
    return not REQUEST_OBJECT_CLAIMS.intersection(claims)


class PrivateKeyJWT:
    """RFC 7523 §3 / OIDC Core §9 assertion checks: signature by a key the client registered,
    ``iss`` = ``sub`` = client_id, ``aud`` naming us, ``exp``, a short life, single-use ``jti``."""

    def audiences(self, endpoint: str) -> list[str]:
        """The issuer, the token endpoint, and the endpoint the assertion is sent to (RFC 7523
        §3 point 3, OIDC Core §9). draft-ietf-oauth-rfc7523bis would narrow this to the
        issuer alone (audience injection); the wider list is what deployed clients send."""
        issuer = app_settings.ISSUER
        values = [issuer, f"{issuer}/", f"{issuer}{ENDPOINT_PATHS[ClientEndpoint.TOKEN]}"]
        if endpoint in ENDPOINT_PATHS:
            values.append(f"{issuer}{ENDPOINT_PATHS[ClientEndpoint(endpoint)]}")
        return list(dict.fromkeys(values))

    def verify(self, assertion: str, client: Client, endpoint: str, now: int | None = None) -> None:
        """The assertion's checks; a FAPI 2.0 client's are narrower (``idp.oauth.fapi``)."""
        claims = self._decode(assertion, client)
        self._check_claims(claims, client, endpoint, now if now is not None else int(timezone.now().timestamp()))
        self._check_replay(claims, client)

    def _decode(self, assertion: str, client: Client) -> dict[str, Any]:
        try:
            keys = client_keys(client)
        except (JoseError, ValueError, TypeError, KeyError):
            # RFC 6749 §5.2: still invalid_client; the operator sees the reason in the event.
            raise ClientAuthError(AuthFailure.NO_CLIENT_KEYS, client_id=client.client_id) from None
        try:
            algorithms = fapi.assertion_algorithms(client, ASSERTION_ALGS)
            token = jwt.decode(assertion, keys, algorithms=algorithms)
        except (JoseError, ValueError, TypeError, UnicodeError, RecursionError):
            raise ClientAuthError(AuthFailure.BAD_ASSERTION, client_id=client.client_id) from None
        claims = dict(token.claims)
        if not is_client_assertion(dict(token.header), claims):
            raise ClientAuthError(AuthFailure.BAD_ASSERTION, "The JWT is not a client assertion (its typ or claims "
                                  "make it another kind of JWT).", client.client_id)
        return claims

    def _check_claims(self, claims: dict[str, Any], client: Client, endpoint: str, now: int) -> None:
        registry = jwt.JWTClaimsRegistry(
            now=now,
            leeway=30,
            iss={"essential": True, "value": client.client_id},
            sub={"essential": True, "value": client.client_id},
            aud={"essential": True, "values": fapi.assertion_audiences(client, self.audiences(endpoint))},
            exp={"essential": True},
            jti={"essential": True},
        )
        try:
            registry.validate(claims)
        except (JoseError, ValueError, TypeError) as error:
            description = getattr(error, "description", "") or "Invalid client assertion claims."
            raise ClientAuthError(AuthFailure.BAD_ASSERTION, description, client.client_id) from None
        issued = claims["iat"] if isinstance(claims.get("iat"), int) else now
        if not isinstance(claims["exp"], int) or claims["exp"] - issued > app_settings.CLIENT_ASSERTION_MAX_AGE:
            raise ClientAuthError(AuthFailure.BAD_ASSERTION, "Client assertion lives too long.", client.client_id)

    def _check_replay(self, claims: dict[str, Any], client: Client) -> None:
        jti = hashlib.sha256(str(claims["jti"]).encode("utf-8", "surrogatepass")).hexdigest()
        lifetime = app_settings.CLIENT_ASSERTION_MAX_AGE + 60
        if not cache.add(f"vigil:client-assertion:{client.client_id}:{jti}", 1, lifetime):
            raise ClientAuthError(AuthFailure.ASSERTION_REPLAY, "The client assertion was already used (jti).",
                                  client.client_id)


def client_keys(client: Client) -> KeySet:
    """The client's registered JWKS, parsed once per process while no client changed
    (``core.config_cache``, the same generation as the client's own copy)."""
    return config_cache.cached(
        ("client-jwks", client.pk),
        lambda: KeySet.import_key_set(cast(KeySetSerialization, client.jwks or {"keys": []})),
    )


# --- the authenticator --------------------------------------------------------------------
class ClientAuthenticator:
    """Authlib's ``ClientAuthentication`` contract: ``(request, methods, endpoint) -> client``."""

    def __init__(self, query_client: Callable[[str], Client | None]):
        self.query_client = query_client
        self.private_key_jwt = PrivateKeyJWT()

    def __call__(self, request: Any, methods: list[str], endpoint: str = ClientEndpoint.TOKEN) -> Client:
        presented = presented_credentials(request)
        if presented is None:
            raise ClientAuthError(AuthFailure.MISSING, "Client authentication is required.")
        client = self._find(presented.client_id)
        registered = client.endpoint_auth_methods(endpoint)
        if presented.method not in registered:
            raise ClientAuthError(AuthFailure.METHOD_MISMATCH, mismatch_description(registered, presented, endpoint),
                                  client.client_id)
        if presented.method not in methods:
            raise ClientAuthError(AuthFailure.METHOD_NOT_ALLOWED_HERE,
                                  f"This request does not accept {presented.method}; use one of: {', '.join(methods)}.",
                                  client.client_id)
        self._verify(presented, client, endpoint)
        request.auth_method = presented.method
        return client

    def _find(self, client_id: str) -> Client:
        client = self.query_client(client_id) if _CLIENT_ID.fullmatch(client_id) else None
        if client is None:
            raise ClientAuthError(AuthFailure.UNKNOWN_CLIENT)
        return client

    def _verify(self, presented: Presented, client: Client, endpoint: str) -> None:
        if presented.method == AuthMethod.PRIVATE_KEY_JWT:
            self.private_key_jwt.verify(presented.assertion, client, endpoint)
        elif presented.method != AuthMethod.NONE and not client.check_client_secret(presented.secret):
            raise ClientAuthError(AuthFailure.WRONG_SECRET, client_id=client.client_id)


def mismatch_description(registered: list[str], presented: Presented, endpoint: str) -> str:
    if not registered:
        return f"This client cannot authenticate at the {endpoint} endpoint; the request used {presented.method}."
    return (
        f"This client is registered for {', '.join(registered)}; the request used {presented.method}."
    )
