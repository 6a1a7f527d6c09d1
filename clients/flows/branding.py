"""Setting a client's logo (the admin and ``create_client --logo``)."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from ..logo import Logo, read_logo
from ..models import Client, ClientLogo


def set_logo(client: Client, data: bytes) -> ClientLogo:
    """Check and re-encode ``data`` (``clients.logo``) and store it as the client's logo;
    raises ``LogoError`` and changes nothing when it is not an acceptable image."""
    return store_logo(client, read_logo(data))


def store_logo(client: Client, logo: Logo) -> ClientLogo:
    """Store an already checked logo (``read_logo``'s result)."""
    with transaction.atomic():
        row, _ = ClientLogo.objects.update_or_create(
            client=client, defaults={"image": logo.data, "sha256": logo.sha256, "updated_at": timezone.now()}
        )
    return row


def remove_logo(client: Client) -> None:
    ClientLogo.objects.filter(client=client).delete()


def scope_descriptions_problem(descriptions: object, allowed_scopes: list[str]) -> str | None:
    """Why a client's ``scope_descriptions`` cannot be shown, or None: a JSON object from one
    of the client's scopes (optionally ``scope@language``) to a sentence of at most 200 characters."""
    if not isinstance(descriptions, dict):
        return "must be a JSON object: {\"scope\": \"what it lets the app do\"}"
    for key, text in descriptions.items():
        scope = str(key).split("@", 1)[0]
        if scope not in allowed_scopes:
            return f"{key!r}: not one of this client's scopes"
        if not isinstance(text, str) or not text.strip() or len(text) > 200:
            return f"{key!r}: the description must be text of 1 to 200 characters"
    return None
