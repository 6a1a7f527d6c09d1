"""Recognising a user's own device and usual network (OWASP "device cookies").

At every full sign-in the browser gets a signed, HttpOnly cookie listing the accounts that
signed in on it, each with a random device nonce, and the network of the address (IPv4 /24,
IPv6 /48) becomes a usual network of the account for ``KNOWN_NETWORK_DAYS`` (its
``MAX_NETWORKS`` latest, in one cache entry per account: no unbounded growth). Throttling
(``throttle.py``) then counts an attempt from that device or network apart from everyone
else's, so nobody elsewhere can delay it.

Entries name accounts by a keyed hash (``salted_hmac``): the cookie does not say which
accounts used the browser. It is issued only once every factor the sign-in needed passed,
never after a password alone (nor in the session a password opens only to enroll a required
factor, until that factor is proved), so knowing a password alone does not mint devices.
(Where the deployment lets a password enroll the first second factor, whoever enrolls it holds
it, and is recognised as the one who signs in with it.)
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable
from datetime import datetime
from functools import wraps
from typing import Any

from django.conf import settings
from django.core import signing
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.crypto import salted_hmac

from core.cache import UNAVAILABLE
from core.cookies import Cookie
from core.crypto import generate_token
from core.events import client_ip

from .app_settings import app_settings
from .throttle import Basis, Source, account_key

logger = logging.getLogger(__name__)
SALT = "vigil.accounts.known-device"
MAX_ACCOUNTS = 5
MAX_NETWORKS = 10
_PENDING = "_vigil_known_device_cookie"


def account_tag(account: str) -> str:
    return salted_hmac(SALT, account_key(account)).hexdigest()[:32]


def network(address: str | None) -> str | None:
    """The network an address belongs to for "usual network": IPv4 /24, IPv6 /48."""
    try:
        parsed = ipaddress.ip_address(address or "")
    except ValueError:
        return None
    prefix = 24 if parsed.version == 4 else 48
    return str(ipaddress.ip_network(f"{parsed}/{prefix}", strict=False))


def _networks_key(tag: str) -> str:
    return f"vigil:usual-nets:{tag}"


def _usual_networks(tag: str, now: float) -> dict[str, float]:
    """The account's usual networks still in date, each with the time it stops being usual."""
    stored = cache.get(_networks_key(tag))
    if not isinstance(stored, dict):
        return {}
    return {str(net): float(until) for net, until in stored.items() if float(until) > now}


def _entries(request: HttpRequest) -> list[tuple[str, str]]:
    value = request.COOKIES.get(app_settings.KNOWN_DEVICE_COOKIE, "")
    if not value:
        return []
    try:
        data = signing.loads(value, salt=SALT, max_age=app_settings.KNOWN_DEVICE_DAYS * 86400)
    except signing.BadSignature:  # also expired
        return []
    if not isinstance(data, list):
        return []
    return [(str(e[0]), str(e[1])) for e in data if isinstance(e, list) and len(e) == 2][:MAX_ACCOUNTS]


def source_for(request: HttpRequest, account: str) -> Source:
    """How an attempt on ``account`` from this request is recognised (``throttle.Basis``)."""
    address = client_ip(request)
    tag = account_tag(account)
    for entry_tag, nonce in _entries(request):
        if entry_tag == tag:
            return Source(address, Basis.KNOWN_DEVICE, nonce)
    net = network(address)
    if net is not None and net in _usual_networks(tag, timezone.now().timestamp()):
        return Source(address, Basis.USUAL_NETWORK)
    return Source(address, Basis.UNFAMILIAR)


def remember(request: HttpRequest, user: Any, now: datetime | None = None) -> None:
    """A full sign-in: the network becomes usual and the device cookie is (re)issued.

    Best effort: it runs after the sign-in's own writes (a confirmed factor, a used code, a new
    session key), so a cache that fails here only leaves the network unusual this time; it must
    not turn a sign-in that happened into a 503 that loses its session and its answer."""
    tag = account_tag(user.get_username())
    net = network(client_ip(request))
    if net is not None:
        try:
            _add_usual_network(tag, net, (now or timezone.now()).timestamp())
        except UNAVAILABLE as error:
            logger.warning("usual network not recorded: the cache is unavailable (%s)", type(error).__name__)
    entries = _entries(request)
    nonce = next((n for t, n in entries if t == tag), None) or generate_token(12)
    kept = [[tag, nonce]] + [[t, n] for t, n in entries if t != tag]
    setattr(request, _PENDING, signing.dumps(kept[:MAX_ACCOUNTS], salt=SALT, compress=True))


def _add_usual_network(tag: str, net: str, now: float) -> None:
    """``net`` is usual for ``KNOWN_NETWORK_DAYS`` more; only the ``MAX_NETWORKS`` latest are kept."""
    lifetime = app_settings.KNOWN_NETWORK_DAYS * 86400
    networks = {**_usual_networks(tag, now), net: now + lifetime}
    latest = sorted(networks.items(), key=lambda item: item[1], reverse=True)[:MAX_NETWORKS]
    cache.set(_networks_key(tag), dict(latest), lifetime)


def issues_cookie(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Views that can complete a sign-in: write the cookie ``remember`` prepared."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = view(request, *args, **kwargs)
        value = getattr(request, _PENDING, None)
        if value:
            spec = cookie()
            response.set_cookie(
                spec.name, value, max_age=app_settings.KNOWN_DEVICE_DAYS * 86400,
                secure=spec.secure, path=spec.path, httponly=True, samesite="Lax",
            )
        return response

    return wrapper


def cookie() -> Cookie:
    """The known-device cookie as set: host-only, Path=/, Secure under an https issuer
    (its default name then takes ``__Host-``, ``core.cookies``)."""
    return Cookie("known-device", app_settings.KNOWN_DEVICE_COOKIE, "ACCOUNTS_KNOWN_DEVICE_COOKIE",
                  secure=settings.SESSION_COOKIE_SECURE)
