"""Test helpers of risk evaluation: real public addresses the shipped GeoLite2 City
database places in known cities, and token-endpoint calls from a given address.

Coordinates are the database's (GeoLite2 City, maxminddb-geolite2 2018.703)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.test import Client as HttpClient
from django.urls import reverse

PARIS = "31.39.1.1"  # FR, Paris, 48.86 N 2.33 E, accuracy 1 km
LYON = "88.186.1.1"  # FR, Lyon, 45.70 N 4.94 E, accuracy 1 km (~403 km from Paris)
MARSEILLE = "79.84.1.1"  # FR, Marseille, accuracy 1 km (~660 km from Paris)
BERLIN = "37.120.1.1"  # DE, Berlin, accuracy 10 km (~880 km from Paris)
LONDON = "5.150.1.1"  # GB, London, accuracy 200 km
SYDNEY = "203.2.218.214"  # AU, Sydney, accuracy 500 km (~16,960 km from Paris)
TOKYO = "1.66.1.1"  # JP, Tokyo, accuracy 500 km
PRIVATE = "192.168.10.20"
CGNAT = "100.64.3.4"
LOOPBACK = "127.0.0.1"


def form_post(url: str, data: dict[str, Any], ip: str, **headers: Any) -> Any:
    body = urlencode({k: v for k, v in data.items() if v is not None}, doseq=True)
    return HttpClient().post(url, data=body, content_type="application/x-www-form-urlencoded", REMOTE_ADDR=ip,
                             **headers)


def exchange(code: str, verifier: str, client_id: str, redirect_uri: str, ip: str) -> Any:
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri, "client_id": client_id,
            "code_verifier": verifier}
    return form_post(reverse("token"), data, ip)


def refresh(refresh_token: str, client_id: str, ip: str) -> Any:
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": client_id}
    return form_post(reverse("token"), data, ip)


def userinfo(access_token: str, ip: str) -> Any:
    return HttpClient().get(reverse("userinfo"), HTTP_AUTHORIZATION=f"Bearer {access_token}", REMOTE_ADDR=ip)
