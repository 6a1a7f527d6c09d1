"""Request objects (RFC 9101; OpenID Connect Core 1.0 §6.1): the authorization request as a
JWT signed by the client, sent by value (``request``) or pushed (RFC 9126 §3).

Authlib's ``rfc9101.JWTAuthenticationRequest`` decodes it: the signature with the keys the
client registered (the same JWKS that verifies its ``private_key_jwt`` assertions,
``client_auth.client_keys``), the ``client_id`` claim equal to the request's, no nested
``request`` / ``request_uri``. We add what it leaves to the server:

- signed objects only: ``alg: none`` and unsigned objects are refused (RFC 9101 §10.2 lets a
  server require signatures; Vigil always does);
- ``iss`` = the client, ``aud`` = our issuer (RFC 9101 §4, §10.2), and an ``exp`` at most
  ``IDP_REQUEST_OBJECT_MAX_LIFETIME_SECONDS`` (default 3600) after its ``iat``, its ``nbf``
  and now: a copied object does not stay usable for long. RFC 9101 and OIDC Core §6.1 leave
  the lifetime to the server; this is the bound Keycloak's secure-request-object policy
  ("available period", one hour) and FAPI 2.0 Message Signing §5.3.2 (60 minutes after
  ``nbf``) set. A FAPI 2.0 client's object also carries ``nbf``, lives at most 60 minutes
  however high the setting (a lower one bounds it too), and is signed with ES256 or PS256;
- the object's parameters are the request: the query's are not used (RFC 9101 §5: "the
  authorization server MUST only use the parameters in the Request Object"), so they take
  precedence by replacing the query entirely.

Every refusal is ``invalid_request_object`` (RFC 9101 §6.3), recorded as
``oauth.request_object_refused``.

By value, an object is not single use: the browser revisits the same ``/authorize?request=``
URL after signing in and consenting, so the same object must keep working for its (short)
life. Single use is what a pushed request gives (RFC 9126 §4), and FAPI 2.0 clients must push.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749.requests import OAuth2Payload
from authlib.oauth2.rfc9101 import JWTAuthenticationRequest
from authlib.oauth2.rfc9101.errors import InvalidRequestObjectError
from django.http import HttpRequest
from django.utils import timezone
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from clients.models import FAPI2_ALGS, Client
from core.app_settings import app_settings
from core.events import EventType, Outcome, record

from .client_auth import ASSERTION_ALGS, client_keys, printable

#: RFC 9101 §10.2 ``request_object_signing_alg_values_supported``: what ``private_key_jwt`` accepts.
REQUEST_OBJECT_ALGS = list(ASSERTION_ALGS)
#: JWT claims of the object itself, not authorization request parameters.
JWT_CLAIMS = frozenset({"iss", "aud", "exp", "nbf", "iat", "jti"})
#: Longest object accepted (characters): a request is a few hundred; this bounds the work.
MAX_LENGTH = 16_384
#: FAPI 2.0 Message Signing §5.3.1: ``exp`` at most 60 minutes after ``nbf``.
FAPI2_MAX_LIFETIME = 3600
LEEWAY = 30


class ParamsPayload(OAuth2Payload):
    """An authorization request's parameters from somewhere other than the query (a request
    object, a pushed request), shaped as Authlib reads them."""

    def __init__(self, datalist: Mapping[str, list[str]]):
        self._datalist = {name: list(values) for name, values in datalist.items() if values}
        self._data = {name: values[0] for name, values in self._datalist.items()}

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> Any:
        return self._datalist


class _Decoder(JWTAuthenticationRequest):
    """Authlib's RFC 9101 decoder with our key source and algorithms; signatures always required."""

    def resolve_client_public_key(self, client: Any) -> KeySet:
        return client_keys(client)

    def get_server_metadata(self) -> dict[str, Any]:
        return {"require_signed_request_object": True}

    def get_client_require_signed_request_object(self, client: Any) -> bool:
        return True

    def get_request_object_signing_algorithms(self, client: Any) -> list[str]:
        return list(FAPI2_ALGS) if client.is_fapi2 else REQUEST_OBJECT_ALGS


_decoder = _Decoder(support_request=True, support_request_uri=False)


def decode(
    raw: Any, client: Client, *, redirect_uri: str | None, request: HttpRequest | None, now: int | None = None
) -> dict[str, list[str]]:
    """The request object's parameters, or an ``OAuth2Error`` (recorded) that goes back to
    ``redirect_uri`` when that was already checked against the client's registration."""
    try:
        claims = _verified_claims(raw, client, now if now is not None else int(timezone.now().timestamp()))
        return as_params(claims)
    except OAuth2Error as error:
        error.redirect_uri = redirect_uri
        error.description = printable(error.description or "")  # RFC 6749 §5.2 characters only
        record(
            EventType.OAUTH_REQUEST_OBJECT_REFUSED, outcome=Outcome.FAILURE, reason=error.error or "",
            client_id=client.client_id, request=request, description=error.description,
        )
        raise


def _verified_claims(raw: Any, client: Client, now: int) -> dict[str, Any]:
    if not isinstance(raw, str) or not raw or len(raw) > MAX_LENGTH:
        raise InvalidRequestObjectError("The request object must be a compact JWS of at most 16384 characters.")
    # Authlib's decoding step (signature, client_id, no nesting) without its hook, which would
    # replace the whole payload and answer a missing client with 404.
    shim = SimpleNamespace(payload=SimpleNamespace(state=None, client_id=client.client_id))
    try:
        claims = dict(_decoder._decode_request_object(shim, client, raw).claims)
    except OAuth2Error as error:
        raise InvalidRequestObjectError(_described(error, client)) from None
    except (JoseError, ValueError, TypeError, KeyError, UnicodeError):
        raise InvalidRequestObjectError("The request object is not a JWS signed by this client's keys.") from None
    _check_claims(claims, client, now)
    return claims


def _described(error: OAuth2Error, client: Client) -> str:
    """Authlib's wording for its refusals, the unsigned case told plainly."""
    if "supported algorithms" in (error.description or ""):
        allowed = _decoder.get_request_object_signing_algorithms(client)
        return f"The request object must be signed (alg none is refused) with one of: {', '.join(allowed)}."
    return error.description or InvalidRequestObjectError.description


def _check_claims(claims: dict[str, Any], client: Client, now: int) -> None:
    rules: dict[str, Any] = {
        "iss": {"essential": True, "value": client.client_id},
        "aud": {"essential": True, "values": [app_settings.ISSUER, f"{app_settings.ISSUER}/"]},
        "exp": {"essential": True},
    }
    if client.is_fapi2:
        rules["nbf"] = {"essential": True}
    try:
        jwt.JWTClaimsRegistry(now=now, leeway=LEEWAY, **rules).validate(claims)
    except (JoseError, ValueError, TypeError) as error:
        description = getattr(error, "description", "") or "Invalid request object claims."
        raise InvalidRequestObjectError(f"Request object: {description}") from None
    if client.is_fapi2 and (not isinstance(claims["nbf"], int) or not isinstance(claims["exp"], int)
                            or claims["exp"] - claims["nbf"] > FAPI2_MAX_LIFETIME):
        raise InvalidRequestObjectError("A FAPI 2.0 request object lives at most 60 minutes (exp - nbf).")
    _check_lifetime(claims, now)


def _check_lifetime(claims: dict[str, Any], now: int) -> None:
    """``exp`` at most the maximum lifetime after ``iat``, ``nbf`` (when present) and now (give
    or take the clock skew allowed: the client's clock may run ahead). The registry has already
    checked that each is a NumericDate."""
    longest = app_settings.REQUEST_OBJECT_MAX_LIFETIME_SECONDS
    starts = [claims[name] for name in ("iat", "nbf") if name in claims] + [now + LEEWAY]
    if claims["exp"] - min(starts) > longest:
        raise InvalidRequestObjectError(
            f"The request object lives too long: exp may be at most {longest} seconds after iat, nbf and now."
        )


def as_params(claims: Mapping[str, Any]) -> dict[str, list[str]]:
    """Claims as request parameters: strings and numbers as they are, a list (``resource``,
    RFC 8707 §2) as repeated values, an object (OIDC ``claims``) as its JSON text."""
    params: dict[str, list[str]] = {}
    for name, value in claims.items():
        if name in JWT_CLAIMS or value is None:
            continue
        params[name] = _values(name, value)
    return params


def _values(name: str, value: Any) -> list[str]:
    if isinstance(value, bool):
        return ["true" if value else "false"]
    if isinstance(value, str | int | float):
        return [str(value)]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    if isinstance(value, dict):
        return [json.dumps(value, separators=(",", ":"))]
    raise InvalidRequestObjectError(f"Request object claim {name[:40]!r} has a value of an unusable type.")
