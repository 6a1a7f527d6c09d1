"""The authorization request's parameters that Authlib leaves to us, parsed or refused.

``prompt`` (OIDC Core §3.1.2.1), ``max_age`` (§3.1.2.1), ``acr_values``, ``response_mode``
(OAuth 2.0 Multiple Response Type Encoding Practices §2.1, OAuth 2.0 Form Post Response
Mode), RFC 8707 ``resource`` and RFC 9449 §10 ``dpop_jkt`` (``request`` / ``request_uri``
were resolved before: ``idp.flows.authorize_request``).
Every refusal is an ``OAuth2Error`` carrying the (already validated) redirect URI, so it
goes back to the client; a bad client or redirect URI never gets this far.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from authlib.oauth2.rfc6749.errors import InvalidRequestError
from authlib.oidc.core.errors import AccountSelectionRequiredError

from core.acr import ACR_ORDER

from ..oauth import resources
from ..oauth.errors import InvalidTargetError

if TYPE_CHECKING:
    from clients.models import Client


class Prompt(StrEnum):
    """OIDC Core §3.1.2.1 ``prompt`` values, all supported."""

    NONE = "none"
    LOGIN = "login"
    CONSENT = "consent"
    SELECT_ACCOUNT = "select_account"


class ResponseMode(StrEnum):
    """How the response reaches the client: query and fragment (Multiple Response Type
    Encoding Practices §2.1), form_post (OAuth 2.0 Form Post Response Mode §2)."""

    QUERY = "query"
    FRAGMENT = "fragment"
    FORM_POST = "form_post"


PROMPTS_SUPPORTED = [p.value for p in Prompt]
RESPONSE_MODES_SUPPORTED = [m.value for m in ResponseMode]
#: The largest ``max_age`` accepted (seconds; about 68 years): larger is refused, not clamped.
MAX_AGE_LIMIT = 2**31 - 1
_DIGITS = re.compile(r"[0-9]{1,10}")
#: RFC 9449 §10: base64url (no padding) of a SHA-256 JWK thumbprint (RFC 7638) is 43 characters.
_JKT = re.compile(r"[A-Za-z0-9_-]{43}")


@dataclass(frozen=True)
class AuthorizeParams:
    prompt: frozenset[Prompt]
    max_age: int | None
    resources: list[str]
    acr_values: list[str]
    dpop_jkt: str
    response_mode: ResponseMode


def requested_mode(data: dict[str, Any], redirect_uri: str | None) -> ResponseMode:
    """The mode to answer in, errors included: the requested one when it is known and fits
    the redirect URI, else ``query`` (the code flow's default)."""
    try:
        mode = ResponseMode(data.get("response_mode") or ResponseMode.QUERY)
    except ValueError:
        return ResponseMode.QUERY
    if mode is ResponseMode.FORM_POST and not _is_web_uri(redirect_uri or ""):
        return ResponseMode.QUERY
    return mode


def _is_web_uri(uri: str) -> bool:
    try:
        return urlsplit(uri).scheme in ("http", "https")
    except ValueError:  # not a URI at all (an unbalanced IPv6 bracket)
        return False


#: RFC 6749 §3.1: parameters appear at most once (Authlib checks response_type, client_id,
#: redirect_uri, scope and state); ``resource`` may repeat (RFC 8707 §2).
SINGLE_VALUED = ("prompt", "max_age", "response_mode", "dpop_jkt", "acr_values", "nonce", "code_challenge",
                 "code_challenge_method", "login_hint")


def parse(
    data: dict[str, Any], datalist: dict[str, list[str]], client: Client, redirect_uri: str, *, scope: str
) -> AuthorizeParams:
    """``scope``: the request's, as resolved for the client (Authlib's ``request.scope``)."""
    for name in SINGLE_VALUED:
        if len(datalist.get(name, [])) > 1:
            raise InvalidRequestError(f"'{name}' may appear only once.", redirect_uri=redirect_uri)
    return AuthorizeParams(
        prompt=_prompt(data.get("prompt"), redirect_uri),
        max_age=_max_age(data.get("max_age"), redirect_uri),
        resources=_resources(datalist.get("resource", []), resources.requestable(client.allowed_audiences, scope),
                             redirect_uri),
        acr_values=[v for v in str(data.get("acr_values") or "").split() if v in ACR_ORDER],
        dpop_jkt=_dpop_jkt(data.get("dpop_jkt"), redirect_uri),
        response_mode=_response_mode(data.get("response_mode"), redirect_uri),
    )


def _prompt(raw: Any, redirect_uri: str) -> frozenset[Prompt]:
    """§3.1.2.1: ``none`` with any other value is an error. ``none select_account`` asks to
    choose an account without any page, so it is ``account_selection_required`` (§3.1.2.6);
    ``none`` with ``login`` or ``consent`` is ``invalid_request``, as is an unknown value."""
    words = set(str(raw or "").split())
    if not words <= set(PROMPTS_SUPPORTED):
        raise InvalidRequestError(
            f"Invalid 'prompt'; use space-separated values from: {', '.join(PROMPTS_SUPPORTED)}.",
            redirect_uri=redirect_uri,
        )
    prompt = frozenset(Prompt(word) for word in words)
    if prompt == {Prompt.NONE, Prompt.SELECT_ACCOUNT}:
        raise AccountSelectionRequiredError(
            "prompt=none forbids showing the account chooser: send prompt=select_account alone.",
            redirect_uri=redirect_uri,
        )
    if Prompt.NONE in prompt and len(prompt) > 1:
        raise InvalidRequestError(
            "prompt=none cannot be combined with other values: send it alone.", redirect_uri=redirect_uri
        )
    return prompt


def _max_age(raw: Any, redirect_uri: str) -> int | None:
    """§3.1.2.1: non-negative integer seconds, ASCII digits only (``str.isdigit`` also
    accepts '²' and '٣', which ``int()`` refuses or reads as another number)."""
    if raw in (None, ""):
        return None
    if not isinstance(raw, str) or not _DIGITS.fullmatch(raw) or int(raw) > MAX_AGE_LIMIT:
        raise InvalidRequestError(
            f"'max_age' must be a whole number of seconds from 0 to {MAX_AGE_LIMIT}.", redirect_uri=redirect_uri
        )
    return int(raw)


def _resources(requested: list[str], allowed: list[str], redirect_uri: str) -> list[str]:
    """RFC 8707 §2: absolute URIs without fragment, each one the client may ask for
    (``idp.oauth.resources.requestable``: its registered ones, and the userinfo endpoint with
    ``openid``)."""
    for resource in requested:
        try:
            parts = urlsplit(resource)
        except ValueError:  # an unbalanced IPv6 bracket, a bad port: not a URI
            raise InvalidTargetError(_target_description(resource), redirect_uri=redirect_uri) from None
        if not parts.scheme or parts.fragment or resource not in allowed:
            raise InvalidTargetError(_target_description(resource), redirect_uri=redirect_uri)
    return list(requested)


def _dpop_jkt(raw: Any, redirect_uri: str) -> str:
    """RFC 9449 §10: the JWK SHA-256 thumbprint of the key the code will be bound to."""
    if raw in (None, ""):
        return ""
    if not isinstance(raw, str) or not _JKT.fullmatch(raw):
        raise InvalidRequestError(
            "'dpop_jkt' must be a base64url SHA-256 JWK thumbprint (43 characters).", redirect_uri=redirect_uri
        )
    return raw


def _response_mode(raw: Any, redirect_uri: str) -> ResponseMode:
    """Unknown modes are refused (``invalid_request``, answered in the query); ``form_post``
    needs a web redirect URI, since a native app cannot receive a POST."""
    if raw in (None, ""):
        return ResponseMode.QUERY
    try:
        mode = ResponseMode(raw)
    except ValueError:
        raise InvalidRequestError(
            f"Unsupported 'response_mode'; use one of: {', '.join(RESPONSE_MODES_SUPPORTED)}.",
            redirect_uri=redirect_uri,
        ) from None
    if mode is ResponseMode.FORM_POST and not _is_web_uri(redirect_uri):
        raise InvalidRequestError("response_mode=form_post needs an http(s) redirect URI.", redirect_uri=redirect_uri)
    return mode


_TARGET_HINT = ("ask only for resources registered for it (create_client --audience), or for the "
                "userinfo_endpoint with scope openid.")


def _target_description(resource: str) -> str:
    """RFC 6749 §5.2: error_description is limited to %x20-21 / %x23-5B / %x5D-7E, so the
    resource is echoed only when it fits (and is short); otherwise the message names no value."""
    if len(resource) <= 200 and all(0x20 <= ord(c) <= 0x7E and c not in '"\\' for c in resource):
        return f"Resource {resource!r} is not allowed for this client; {_TARGET_HINT}"
    return f"A requested resource is not allowed for this client; {_TARGET_HINT}"
