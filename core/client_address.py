"""The client's address, seen through the proxies the operator trusts.

``X-Forwarded-For`` (the de-facto form of RFC 7239 §5.2 ``for=``) lists the addresses a
request passed through, each proxy appending the peer it received the request from. Only
entries written by proxies we trust mean anything: everything to the left of them was
written by the client, who can write any address there.

So the chain is read from the right: the peer address (``REMOTE_ADDR``), then the header's
entries from last to first. Each address that belongs to a trusted proxy is skipped; the
first one that does not is the client. When the peer itself is not a trusted proxy the
header is ignored altogether: the peer is the client.

Trusted proxies come from the environment (``vigil/settings.py``):

- ``VIGIL_TRUSTED_PROXIES``: addresses and CIDR networks of the proxies in front of Vigil
  (``127.0.0.1,10.0.0.0/8``). Default: none, so no forwarded header is ever believed.
- ``VIGIL_TRUSTED_PROXY_HOPS``: the number of proxies in front of Vigil, for proxies whose
  addresses are not fixed. The first that many addresses of the chain (the peer counting
  as the first) are trusted whatever they are, so use it only when Vigil's port can be
  reached through those proxies alone. Default 0.

An unusable entry where the client should be (``unknown``, garbage) stops the walk at the
last trusted proxy, whose address is then returned: never a client-written value.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from typing import TypeAlias

from django.conf import settings
from django.http import HttpRequest

Address: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
Network: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_address(value: str) -> Address | None:
    """One address as proxies write it: ``192.0.2.1``, ``192.0.2.1:443``, ``[2001:db8::1]:443``,
    ``2001:db8::1``; an IPv4-mapped IPv6 address becomes the IPv4 one. None when unusable."""
    text = value.strip().strip('"')
    if text.startswith("["):
        text = text[1:].split("]", 1)[0]
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def parse_networks(entries: tuple[str, ...]) -> tuple[list[Network], list[str]]:
    """The trusted networks, and the entries that are not an address or a network."""
    networks: list[Network] = []
    invalid: list[str] = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            invalid.append(entry)
    return networks, invalid


@lru_cache(maxsize=8)
def _networks(entries: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(parse_networks(entries)[0])


def trusted_proxy_entries() -> tuple[str, ...]:
    """``VIGIL_TRUSTED_PROXIES`` as a tuple of strings (a list, or a comma-separated string)."""
    value = getattr(settings, "VIGIL_TRUSTED_PROXIES", ())
    if isinstance(value, str):
        value = value.split(",")
    return tuple(str(item).strip() for item in value if str(item).strip())


def parse_hops(value: object) -> int | None:
    """``VIGIL_TRUSTED_PROXY_HOPS`` as a whole number (blank is 0); None when it is not one
    (``-1``, ``two``, ``²``: system check ``vigil.E010``)."""
    text = str(value).strip() or "0"
    return int(text) if text.isascii() and text.isdigit() else None


def trusted_hops() -> int:
    """The configured hop count; an invalid one trusts nothing (0)."""
    return parse_hops(getattr(settings, "VIGIL_TRUSTED_PROXY_HOPS", 0)) or 0


def _trusted(address: Address, position: int, networks: tuple[Network, ...], hops: int) -> bool:
    return position < hops or any(address.version == net.version and address in net for net in networks)


@lru_cache(maxsize=1024)
def resolve(peer: str | None, forwarded_for: str, networks: tuple[Network, ...], hops: int) -> str | None:
    """The client address from the peer address and the ``X-Forwarded-For`` value (pure, so
    kept per input: a token request asks three or four times, each parse costs ~30 us)."""
    current = parse_address(peer or "")
    if current is None:
        return None
    entries = [item for item in forwarded_for.split(",") if item.strip()] if forwarded_for else []
    position = 0
    while _trusted(current, position, networks, hops) and entries:
        candidate = parse_address(entries.pop())
        if candidate is None:
            break
        current, position = candidate, position + 1
    return str(current)


def client_address(request: HttpRequest) -> str | None:
    """The address of the client that sent ``request`` (see the module docstring)."""
    return resolve(
        request.META.get("REMOTE_ADDR"),
        request.META.get("HTTP_X_FORWARDED_FOR", ""),
        _networks(trusted_proxy_entries()),
        trusted_hops(),
    )


def from_trusted_proxy(request: HttpRequest) -> bool:
    """Whether ``request``'s peer is a proxy the operator trusts (``VIGIL_TRUSTED_PROXIES``, or
    the first of ``VIGIL_TRUSTED_PROXY_HOPS``): only then may a header it sets be believed."""
    peer = parse_address(request.META.get("REMOTE_ADDR") or "")
    return peer is not None and _trusted(peer, 0, _networks(trusted_proxy_entries()), trusted_hops())


def source_key(address: str | None) -> str:
    """One source: an IPv4 address, or an IPv6 /64 (what one host or subscriber controls)."""
    try:
        parsed = ipaddress.ip_address(address or "")
    except ValueError:
        return "none"
    if parsed.version == 6:
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return str(parsed)
