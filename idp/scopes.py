"""What each scope means to the person asked to consent, in plain language (OIDC Core 1.0
§5.4 ``profile``/``email``/``address``/``phone``, §11 ``offline_access``; §3.1.2.1 ``openid``).

The consent page shows these sentences, never bare scope names. The standard scopes are
described here and translated like every page; a client's own scope (an API scope such as
``orders.read``) is described by that client (``Client.scope_descriptions``, set in the
admin or with ``create_client --scope-description``: a per-language ``scope@de`` key wins
over the plain one), and one nobody described is shown by its name, marked as such.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from django.utils.functional import Promise
from django.utils.translation import get_language, gettext_lazy
from django.utils.translation import gettext as _

if TYPE_CHECKING:
    from clients.models import Client


class StandardScope(StrEnum):
    OPENID = "openid"
    PROFILE = "profile"
    EMAIL = "email"
    PHONE = "phone"
    ADDRESS = "address"
    OFFLINE_ACCESS = "offline_access"


SCOPE_DESCRIPTIONS: dict[str, Promise] = {
    StandardScope.OPENID: gettext_lazy("Sign you in with your account"),
    StandardScope.PROFILE: gettext_lazy("See your name and username"),
    StandardScope.EMAIL: gettext_lazy("See your email address and whether it is verified"),
    StandardScope.PHONE: gettext_lazy("See your phone number"),
    StandardScope.ADDRESS: gettext_lazy("See your postal address"),
    StandardScope.OFFLINE_ACCESS: gettext_lazy("Stay signed in while you are not using it"),
}


@dataclass(frozen=True)
class ScopeView:
    name: str
    description: str
    known: bool


def _client_description(client: Client | None, name: str) -> str | None:
    own = (client.scope_descriptions if client is not None else None) or {}
    language = get_language() or "en"
    for key in (f"{name}@{language}", f"{name}@{language.split('-', 1)[0]}", name):
        text = own.get(key)
        if isinstance(text, str) and text.strip():
            return text.strip()
    return None


def describe(name: str, client: Client | None = None) -> ScopeView:
    if name in SCOPE_DESCRIPTIONS:
        return ScopeView(name, str(SCOPE_DESCRIPTIONS[name]), True)
    own = _client_description(client, name)
    if own is not None:
        return ScopeView(name, own, False)
    return ScopeView(name, _("Access “%(scope)s”") % {"scope": name}, False)


def describe_scopes(scope: str, client: Client | None = None) -> list[ScopeView]:
    """The consent page's list: each scope's sentence, in the page's language."""
    return [describe(name, client) for name in scope.split()]
