"""What a client's audiences may name, wherever a client is written (the admin, ``create_client``,
``register_client``, ``save()`` and the bulk writes of ``ClientQuerySet``), and check
``clients.W003`` over the rows already stored.

The audience model (docs/authorization.md "Which access tokens /userinfo takes"): a token's
``aud`` names the resources it is for (RFC 8707), or its own client's ``client_id`` when it
was asked for none; ``/userinfo`` takes a token whose ``aud`` names the userinfo endpoint or
the token's own client (RFC 9068 §4). Three values would break it, and are refused:

- the issuer's own URLs (the issuer, ``/userinfo`` and every address below it) in
  ``served_resources``: Vigil alone serves them. A client serving the userinfo endpoint
  could introspect (RFC 7662 §4) and exchange (RFC 8693) every user's token narrowed to it,
  whichever client it was issued to;
- the same URLs as a ``client_id``: a client is the audience of its own ``client_id``, so
  it could exchange every token meant for that URL as a token sent to it;
- in ``token_exchange_audiences``: the client's own ``client_id`` (an exchanged token carries
  the exchanging client's ``client_id``, so ``/userinfo`` would take a token exchanged for
  it as the service's own: the userinfo endpoint granted without being named), and the
  issuer's URLs other than the userinfo endpoint written exactly as discovery publishes it.
  That one is allowed: an administrator's explicit grant that lets a service read
  ``/userinfo`` with the tokens it exchanges (docs/protocols.md).

Another client's ``client_id`` stays allowed in both lists. Served, it is how an app's
backend introspects and exchanges the app's tokens asked for without ``resource`` (the
tokens it is sent). As an exchange audience it names a downstream service by its client_id
(Keycloak's way); the token carries the exchanging service's ``client_id``, so ``/userinfo``
does not take it as that other client's.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from core.app_settings import app_settings
from core.issuer_urls import userinfo_endpoint, within_issuer
from core.json_shapes import listed


class AudienceField(StrEnum):
    """The client fields these rules read (``Client`` field names)."""

    CLIENT_ID = "client_id"
    SERVED_RESOURCES = "served_resources"
    TOKEN_EXCHANGE_AUDIENCES = "token_exchange_audiences"


@dataclass(frozen=True)
class AudienceProblem:
    field: AudienceField
    message: str


def problems(client_id: object, served: object, exchange: object) -> list[AudienceProblem]:
    """What breaks the audience model in one client's values: each list's values, and a list
    that is none (``listed``: read as naming nothing, so reported rather than ignored)."""
    found = []
    if isinstance(client_id, str) and within_issuer(client_id):
        found.append(AudienceProblem(AudienceField.CLIENT_ID, _issuer_client_id(client_id)))
    found += [AudienceProblem(field, _NOT_A_LIST) for field, values in
              ((AudienceField.SERVED_RESOURCES, served), (AudienceField.TOKEN_EXCHANGE_AUDIENCES, exchange))
              if listed(values) != values]
    found += [AudienceProblem(AudienceField.SERVED_RESOURCES, _served(value))
              for value in listed(served) if not servable(value)]
    found += [AudienceProblem(AudienceField.TOKEN_EXCHANGE_AUDIENCES, message)
              for value in listed(exchange) if (message := _exchange_problem(value, client_id))]
    return found


def servable(value: object) -> bool:
    """Whether a client may serve ``value``: none of Vigil's own URLs. Also asked where a
    stored value is used (introspection, token exchange), so a row written behind these rules
    grants nothing before check ``clients.W003`` reports it."""
    return isinstance(value, str) and not within_issuer(value)


def exchangeable(value: object, client_id: str) -> bool:
    """Whether the client ``client_id`` may exchange tokens for ``value`` (asked at the token
    exchange too, as ``servable`` is)."""
    return isinstance(value, str) and _exchange_problem(value, client_id) is None


def first_problem(client_id: object, served: object, exchange: object) -> str | None:
    """The first of ``problems``, as ``register_client`` reports it."""
    found = problems(client_id, served, exchange)
    return found[0].message if found else None


def by_field(found: Iterable[AudienceProblem]) -> dict[str, list[str]]:
    """``problems`` as a ``ValidationError`` dict: each under its field."""
    errors: dict[str, list[str]] = {}
    for problem in found:
        errors.setdefault(problem.field.value, []).append(problem.message)
    return errors


def _exchange_problem(value: str, client_id: object) -> str | None:
    if value == client_id:
        return (f"{value} is this client's own client_id: /userinfo would take a token exchanged for it as "
                f"the client's own (RFC 9068 section 4). To let it read /userinfo with exchanged tokens, list "
                f"the userinfo endpoint, {userinfo_endpoint()}, instead.")
    if within_issuer(value) and value != userinfo_endpoint():
        return (f"{value} is one of Vigil's own URLs: none is an exchange audience but the userinfo "
                f"endpoint, written exactly {userinfo_endpoint()}.")
    return None


_NOT_A_LIST = 'is not a JSON list of strings (e.g. ["https://api.example.com"]), so it names no audience.'


def _served(value: str) -> str:
    return (f"{value} is one of Vigil's own URLs (the issuer {app_settings.ISSUER} or an endpoint below it, "
            "such as the userinfo endpoint): Vigil alone serves them. A client serving it could introspect "
            "and exchange every user's token meant for it.")


def _issuer_client_id(value: str) -> str:
    return (f"{value} is one of Vigil's own URLs (below the issuer {app_settings.ISSUER}): a client_id is "
            "an audience of its client's tokens, and Vigil's own URLs are no client's.")
