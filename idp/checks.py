"""System checks for insecure combinations (stable ids ``vigil.E00x`` / ``vigil.W00x``)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register

from accounts import known_devices
from core import cookies
from core.app_settings import app_settings
from core.client_address import parse_hops, parse_networks, trusted_proxy_entries
from core.conf import unreadable

from .flows import request_rates
from .flows.authorize_request import browser_cookie


@register(Tags.security, deploy=True)
def check_issuer(app_configs: Any = None, **kwargs: Any) -> list[Error | Warning]:
    issuer: str = getattr(settings, "IDP_ISSUER", "")
    problems: list[Error | Warning] = []
    dev = settings.DEBUG or getattr(settings, "TESTING", False)
    if not issuer.startswith("https://") and not dev:
        problems.append(
            Error("IDP_ISSUER must be an https URL.", hint="Set IDP_ISSUER=https://...", id="vigil.E001")
        )
    if issuer.startswith("http://") and dev:
        host = issuer.split("://", 1)[1].split("/", 1)[0].split(":", 1)[0]
        if host not in {"localhost", "127.0.0.1", "[::1]"}:
            problems.append(
                Error("An http issuer is only allowed on localhost in development.", id="vigil.E002")
            )
    if settings.IDP_KEY_ENCRYPTION_SECRET.startswith("dev-insecure") and not dev:
        problems.append(Error("IDP_KEY_ENCRYPTION_SECRET is the development default.", id="vigil.E003"))
    return problems


@register(Tags.caches, deploy=True)
def check_shared_cache(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    backend = str(settings.CACHES["default"]["BACKEND"])
    if backend.endswith(("LocMemCache", "DummyCache")):
        return [
            Warning(
                "The default cache is not shared between processes: DPoP and client-assertion replay "
                "caches, single-use attestation challenges, login throttles and the configuration "
                "generation (which tells every process that a client, key or policy changed) would be "
                "per process.",
                hint="Set REDIS_URL.",
                id="vigil.W001",
            )
        ]
    return []


@register(Tags.security)
def check_trusted_proxies(app_configs: Any = None, **kwargs: Any) -> list[Error | Warning]:
    """``VIGIL_TRUSTED_PROXIES`` / ``VIGIL_TRUSTED_PROXY_HOPS`` (core/client_address.py)."""
    problems: list[Error | Warning] = []
    _, invalid = parse_networks(trusted_proxy_entries())
    if invalid:
        problems.append(Error(f"VIGIL_TRUSTED_PROXIES has entries that are not addresses or CIDRs: {invalid}",
                              hint="e.g. VIGIL_TRUSTED_PROXIES=127.0.0.1,10.0.0.0/8", id="vigil.E010"))
    configured = getattr(settings, "VIGIL_TRUSTED_PROXY_HOPS", 0)
    hops = parse_hops(configured)
    if hops is None:
        problems.append(Error(f"VIGIL_TRUSTED_PROXY_HOPS must be a whole number, not {configured!r}.",
                              hint="e.g. VIGIL_TRUSTED_PROXY_HOPS=1, or 0 to trust no hop count", id="vigil.E010"))
    elif hops > 0 and not trusted_proxy_entries():
        problems.append(Warning(
            "VIGIL_TRUSTED_PROXY_HOPS trusts the first proxies' addresses whoever they are: anyone who "
            "reaches Vigil's port directly can choose the address Vigil sees.",
            hint="Prefer VIGIL_TRUSTED_PROXIES, or make the port reachable from the proxy only.", id="vigil.W010"))
    return problems


@register(Tags.security, deploy=True)
def check_proxy_addresses(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    """``vigil.W011``: behind a TLS proxy (``DJANGO_BEHIND_TLS_PROXY``) with no proxy trusted,
    every request seems to come from the proxy: the risk engine (impossible travel, new
    networks) sees one address, and each per-address limit (sign-in throttle, rates) is one
    bucket for everybody, which one client can spend for all."""
    behind_proxy = getattr(settings, "SECURE_PROXY_SSL_HEADER", None) is not None
    if not behind_proxy or trusted_proxy_entries() or parse_hops(getattr(settings, "VIGIL_TRUSTED_PROXY_HOPS", 0)):
        return []
    return [Warning(
        "DJANGO_BEHIND_TLS_PROXY is on but no proxy is trusted: every request seems to come from the proxy's "
        "address, so risk signals see one address and every per-address limit is one bucket for all clients.",
        hint="Set VIGIL_TRUSTED_PROXIES to your proxy's address or network (docs/operations.md \"Proxies\").",
        id="vigil.W011")]


@register(Tags.security, deploy=True)
def check_outbound(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    """``core.outbound``: registered URLs may lead to internal addresses only when said so."""
    if not app_settings.OUTBOUND_ALLOW_PRIVATE_ADDRESSES:
        return []
    return [Warning(
        "IDP_OUTBOUND_ALLOW_PRIVATE_ADDRESSES is on: a client, transmitter or receiver that controls its DNS can "
        "make Vigil reach loopback and private addresses (request_uri, jwks_uri, push and logout endpoints).",
        hint="Turn it off unless those parties are on your internal network.", id="vigil.W020")]


@register(Tags.security)
def check_cookie_names(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """Every cookie Vigil sets, against its name's prefix (``core.cookies``, RFC 6265bis §4.1.3):
    ``vigil.E030`` a prefixed cookie that is not Secure, ``vigil.E031`` a ``__Host-`` cookie
    with a Domain or a Path other than /. Browsers would drop such a cookie without a word."""
    every = [*cookies.project_cookies(), known_devices.cookie(), browser_cookie()]
    return [problem for cookie in every for problem in cookies.problems(cookie)]


@register(Tags.security)
def check_request_rates(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """``vigil.E040``: a rate that cannot be read would refuse every request it counts (a 500)."""
    return [Error(f"{error}.", hint="e.g. IDP_PAR_RATE=60/min", id="vigil.E040")
            for error in unreadable(*request_rates.RATES.values())]
