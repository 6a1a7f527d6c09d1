"""Location signals: impossible travel and a new country (docs/risk.md).

Consecutive located requests of one user are compared: the great-circle distance
(haversine), less both locations' accuracy radii so coarse geolocation never fires, over
the time between them. Travel is impossible when that distance is at least
``SESSIONS_RISK_TRAVEL_MIN_DISTANCE_KM`` and the implied speed exceeds
``SESSIONS_RISK_TRAVEL_MAX_SPEED_KMH``. The profile row is locked while it is compared and
updated, so concurrent requests of one user are judged one after the other.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from .geo import Location
from .models import RiskSignal, UserRiskProfile
from .settings import risk_settings
from .signals import Signal

EARTH_RADIUS_KM = 6371.0088


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance by the haversine formula."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi, dlmb = phi2 - phi1, math.radians(lon2 - lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlmb / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


def locked_profile(user: Any) -> UserRiskProfile:
    """The user's profile under a row lock (created on first use). Call inside ``atomic()``."""
    profile = UserRiskProfile.objects.select_for_update().filter(user=user).first()
    if profile is None:  # first located request of this user; get_or_create is safe against a racing twin
        created, _ = UserRiskProfile.objects.get_or_create(user=user)
        profile = UserRiskProfile.objects.select_for_update().get(pk=created.pk)
    return profile


def travel_signal(profile: UserRiskProfile, here: Location, now: datetime) -> Signal | None:
    """Impossible travel from the profile's last location to ``here`` at ``now``, if any."""
    if profile.last_latitude is None or profile.last_longitude is None or profile.last_seen_at is None:
        return None
    raw = distance_km(profile.last_latitude, profile.last_longitude, here.latitude, here.longitude)
    distance = max(0.0, raw - profile.last_accuracy_km - here.accuracy_km)
    if distance < risk_settings.TRAVEL_MIN_DISTANCE_KM:
        return None
    hours = max(0.0, (now - profile.last_seen_at).total_seconds()) / 3600
    speed = math.inf if hours == 0 else distance / hours
    if speed <= risk_settings.TRAVEL_MAX_SPEED_KMH:
        return None
    return Signal(RiskSignal.IMPOSSIBLE_TRAVEL, {
        "from_ip": profile.last_ip, "from_country": profile.last_country, "from_city": profile.last_city,
        "to_ip": here.ip, "to_country": here.country, "to_city": here.city,
        "distance_km": round(raw, 1), "counted_distance_km": round(distance, 1),
        "hours": round(hours, 3), "speed_kmh": None if math.isinf(speed) else round(speed, 1),
        "max_speed_kmh": risk_settings.TRAVEL_MAX_SPEED_KMH,
        "since": profile.last_seen_at.isoformat(),
    })


def country_signal(profile: UserRiskProfile, here: Location) -> Signal | None:
    """A country this user was never located in before (the first location sets the baseline)."""
    known = list(profile.countries or [])
    if not here.country or not known or here.country in known:
        return None
    return Signal(RiskSignal.NEW_COUNTRY, {"country": here.country, "known_countries": known, "ip": here.ip})


def remember(profile: UserRiskProfile, here: Location, now: datetime) -> None:
    """Make ``here`` the user's last location (and its country a known one)."""
    profile.last_ip, profile.last_latitude, profile.last_longitude = here.ip, here.latitude, here.longitude
    profile.last_accuracy_km, profile.last_country, profile.last_city = here.accuracy_km, here.country, here.city
    profile.last_seen_at = now
    if here.country and here.country not in (profile.countries or []):
        profile.countries = [*(profile.countries or []), here.country]
    profile.save(update_fields=[
        "last_ip", "last_latitude", "last_longitude", "last_accuracy_km", "last_country", "last_city",
        "last_seen_at", "countries",
    ])
