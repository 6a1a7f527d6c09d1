"""Offline geolocation (GeoLite2 City shipped by maxminddb-geolite2) and great-circle distance."""

from __future__ import annotations

import pytest

from risk import geo
from risk import testing as net
from risk.travel import distance_km


def test_real_public_addresses_resolve_to_their_cities():
    paris, sydney = geo.locate(net.PARIS), geo.locate(net.SYDNEY)
    assert paris is not None and (paris.country, paris.city) == ("FR", "Paris")
    assert sydney is not None and (sydney.country, sydney.city) == ("AU", "Sydney")
    assert paris.latitude == pytest.approx(48.86, abs=0.05) and sydney.longitude == pytest.approx(151.2, abs=0.05)
    assert sydney.accuracy_km == 500
    assert geo.locate("2001:4860:4860::8888") is not None  # IPv6 too


@pytest.mark.parametrize("ip", [net.PRIVATE, "10.1.2.3", "172.16.0.9", net.CGNAT, net.LOOPBACK, "::1", "fd12::1",
                                "fe80::1", "169.254.1.1", "192.0.2.10", "224.0.0.1", "0.0.0.0", "not-an-ip", "", None])
def test_addresses_that_say_nothing_about_a_place_are_skipped(ip):
    assert not geo.is_locatable(ip)
    assert geo.locate(ip) is None


def test_ipv4_mapped_addresses_are_judged_as_ipv4():
    assert not geo.is_locatable("::ffff:192.168.1.1")
    located = geo.locate(f"::ffff:{net.PARIS}")
    assert located is not None and located.city == "Paris"


def test_a_database_by_path(settings, tmp_path):
    settings.SESSIONS_GEOIP_DATABASE = geo.shipped_database()
    berlin = geo.locate(net.BERLIN)
    assert berlin is not None and berlin.city == "Berlin"
    settings.SESSIONS_GEOIP_DATABASE = str(tmp_path / "missing.mmdb")
    assert geo.locate(net.BERLIN) is None  # logged, never a 500


def test_distances():
    paris, sydney, lyon = geo.locate(net.PARIS), geo.locate(net.SYDNEY), geo.locate(net.LYON)
    assert paris is not None and sydney is not None and lyon is not None
    assert distance_km(paris.latitude, paris.longitude, sydney.latitude, sydney.longitude) == pytest.approx(16960, rel=0.01)
    assert distance_km(paris.latitude, paris.longitude, lyon.latitude, lyon.longitude) == pytest.approx(403, rel=0.01)
    assert distance_km(0, 0, 0, 180) == pytest.approx(20015, rel=0.001)
    assert distance_km(10, 10, 10, 10) == 0
