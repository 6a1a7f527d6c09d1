"""What clients add to signing-key rotation (``core.keys``): the longest access-token lifetime
any client has (a retiring key stays published until its tokens expire) and the algorithms
a client may choose (each gets a key)."""

from __future__ import annotations

from django.db.models import Max

from .models import Client


def longest_access_token_lifetime() -> int:
    return Client.objects.aggregate(m=Max("access_token_lifetime"))["m"] or 0


def signing_alg_choices() -> list[str]:
    return [str(value) for value, _ in Client._meta.get_field("signing_alg").choices or []]
