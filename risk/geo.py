"""Offline IP geolocation for the location signals (impossible travel, new country).

Reads a MaxMind DB City database (the MaxMind DB format spec) with ``maxminddb``: the
GeoLite2 City database shipped in the ``maxminddb-geolite2`` package by default, or the
file at ``SESSIONS_GEOIP_DATABASE``. Nothing is fetched at run time.

Addresses that are not globally routable (RFC 1918 / RFC 4193 private, loopback,
link-local, CGNAT RFC 6598, documentation, multicast, unspecified) are never located:
they say nothing about where a user is. Neither is an address the database does not
know, or one it places only in a country (no coordinates).
"""

from __future__ import annotations

import ipaddress
import logging
import os
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from .settings import risk_settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Location:
    ip: str
    latitude: float
    longitude: float
    accuracy_km: float
    country: str
    city: str


def shipped_database() -> str | None:
    """Path of the GeoLite2 City database of the ``maxminddb-geolite2`` package, if installed."""
    try:
        import _maxminddb_geolite2  # type: ignore[import-untyped]
    except ImportError:
        return None
    path = os.path.join(os.path.dirname(_maxminddb_geolite2.__file__), "GeoLite2-City.mmdb")
    return path if os.path.exists(path) else None


def database_path() -> str | None:
    return risk_settings.GEOIP_DATABASE or shipped_database()


@lru_cache(maxsize=4)
def _reader(path: str) -> Any:
    """One memory-mapped reader per database file (keyed by path, so a new setting takes effect)."""
    import maxminddb

    return maxminddb.open_database(path, maxminddb.MODE_AUTO)


def is_locatable(ip: str | None) -> bool:
    """Whether ``ip`` is a globally routable unicast address worth locating."""
    if not ip:
        return False
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def locate(ip: str | None) -> Location | None:
    """The city-level location of ``ip``, or None (not locatable, unknown, or no database)."""
    if not is_locatable(ip):
        return None
    path = database_path()
    if path is None:
        logger.warning("No GeoIP database: install maxminddb-geolite2 or set SESSIONS_GEOIP_DATABASE.")
        return None
    try:
        record = _reader(path).get(str(ip))
    except (OSError, ValueError) as exc:
        logger.warning("GeoIP lookup failed for the configured database: %s", exc)
        return None
    return _location(str(ip), record) if isinstance(record, dict) else None


def _location(ip: str, record: dict[str, Any]) -> Location | None:
    where = record.get("location") or {}
    lat, lon = where.get("latitude"), where.get("longitude")
    if not isinstance(lat, (int, float)) or not isinstance(lon, (int, float)):
        return None
    country = (record.get("country") or record.get("registered_country") or {}).get("iso_code") or ""
    city = ((record.get("city") or {}).get("names") or {}).get("en") or ""
    accuracy = where.get("accuracy_radius")
    return Location(
        ip=ip, latitude=float(lat), longitude=float(lon),
        accuracy_km=float(accuracy) if isinstance(accuracy, (int, float)) else 0.0,
        country=str(country)[:2], city=str(city)[:100],
    )


@dataclass(frozen=True)
class PlaceNames:
    """City and country of an address in each language the database has (``en``, ``de``, ``es``...)."""

    city: dict[str, str]
    country: dict[str, str]

    def in_language(self, language: str) -> tuple[str, str]:
        """(city, country) in ``language`` (``de-at`` tries ``de``), else English, else ``""``."""
        codes = [language, language.split("-", 1)[0], "en"]
        pick = lambda names: next((names[c] for c in codes if names.get(c)), "")  # noqa: E731
        return pick(self.city), pick(self.country)


def place_names(ip: str | None) -> PlaceNames | None:
    """Where ``ip`` is, by name, for people to read (the account page); None when not locatable."""
    if not is_locatable(ip) or (path := database_path()) is None:
        return None
    try:
        record = _reader(path).get(str(ip))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict):
        return None
    country = record.get("country") or record.get("registered_country") or {}
    city_names = (record.get("city") or {}).get("names") or {}
    country_names = country.get("names") or {}
    if not country_names:
        return None
    return PlaceNames({str(k): str(v) for k, v in city_names.items()},
                      {str(k): str(v) for k, v in country_names.items()})
