"""Which resources (RFC 8707) a token may be for, and which tokens our own resource endpoint
accepts (RFC 9068 §4).

Our userinfo endpoint is itself a resource (OIDC Core §5.3), named by its URL as discovery
publishes it (``userinfo_endpoint``). Any client may ask for it as a ``resource`` whenever the
token's scope includes ``openid`` (at ``/authorize``, ``/par``, ``/device_authorization`` and,
to narrow, at the token endpoint), without registering it: ``openid`` already grants access to
userinfo. Without ``openid`` it can never be named, whatever a client's registration or the
grant says (a refresh dropping ``openid`` and naming no resource keeps the family's audiences;
/userinfo refuses that token for its scope).

A resource server must check that a token's ``aud`` names it (RFC 9068 §4). Ours accept a
token whose ``aud`` names the endpoint's own identifier, or the token's own client: the
audience of a token not narrowed to any resource, meant for the client's use with us. A token
narrowed to another resource (``aud`` = that resource only) is for that resource alone, so
its server cannot replay it here to read the user's claims.
"""

from __future__ import annotations

from typing import Any

from core.issuer_urls import userinfo_endpoint
from core.json_shapes import listed

from ..scopes import StandardScope


def implied(scope: str) -> list[str]:
    """The resources a token of ``scope`` may be for without any registration: the userinfo
    endpoint, with ``openid``."""
    return [userinfo_endpoint()] if StandardScope.OPENID in scope.split() else []


def requestable(registered: object, scope: str) -> list[str]:
    """What a client may name as ``resource`` for a token of ``scope``: its registered
    resources (``Client.allowed_audiences``: the strings of that list, ``core.json_shapes.listed``;
    a row written behind the admin may hold anything), and the userinfo endpoint exactly when
    ``scope`` has ``openid`` (registered or not)."""
    own = userinfo_endpoint()
    return [*(r for r in listed(registered) if r != own), *implied(scope)]


def audiences(claims: dict[str, Any]) -> set[str]:
    """The ``aud`` of an access token (RFC 9068 §2.2: one string or a list of them)."""
    aud = claims.get("aud")
    if isinstance(aud, str):
        return {aud}
    return {a for a in aud if isinstance(a, str)} if isinstance(aud, list) else set()


def accepted_at(claims: dict[str, Any], resource: str) -> bool:
    """RFC 9068 §4 at our resource endpoint ``resource``: the token's ``aud`` names it, or
    names the token's own client (its default audience)."""
    client_id = claims.get("client_id")
    expected = {resource, client_id} if isinstance(client_id, str) and client_id else {resource}
    return bool(audiences(claims) & expected)
