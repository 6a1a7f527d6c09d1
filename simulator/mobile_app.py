"""A simulated mobile app that talks to a running Vigil over HTTP, end to end.

It does what an AppAuth-style app does: opens the authorization request in the "system
browser" (a ``requests`` session that fills the real login form, and the TOTP step when
asked), gets an attestation challenge, exchanges the code with an enrollment attestation
and a DPoP proof, then refreshes with a fresh assertion (iOS) or key signature + Play
Integrity verdict (Android) and a DPoP proof each time. Used by the live-server tests and
by ``manage.py device_demo`` (``make demo``).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import requests
from joserfc.jwk import ECKey

from attestation.binding import RequestBinding, devicecheck_hash, grant_hash
from core.encoding import b64url_encode
from sessions.dpop import thumbprint
from sessions.dpop.client import create_proof

from .android import AndroidDevice
from .ios import IOSDevice

CHALLENGE_HEADER = "OAuth-Client-Attestation-Challenge"


class FlowError(Exception):
    """The server answered something the app did not expect."""


@dataclass
class BrowserAgent:
    """The system browser: follows redirects, fills the login form and the second step."""

    http: requests.Session = field(default_factory=requests.Session)

    def run(self, url: str, stop_prefix: str, username: str, password: str,
            otp: Callable[[], str] | None = None) -> str:
        for _ in range(12):
            response = self.http.get(url, allow_redirects=False, timeout=15)
            if response.status_code == 200:
                response = self._fill(response, username, password, otp)
            if response.status_code != 302:
                raise FlowError(f"unexpected {response.status_code} at {response.url}: {response.text[:300]}")
            location = response.headers["Location"]
            if location.startswith(stop_prefix):
                return location
            url = urljoin(response.url, location)
        raise FlowError("too many redirects")

    def _fill(self, page: requests.Response, username: str, password: str,
              otp: Callable[[], str] | None) -> requests.Response:
        if 'name="password"' in page.text:
            fields = {"username": username, "password": password}
        elif 'name="method" value="totp"' in page.text and otp is not None:
            fields = {"method": "totp", "code": otp()}
        else:
            raise FlowError(f"no form this app can fill at {page.url}")
        form = _form_containing(page.text, 'name="password"' if "password" in fields else 'value="totp"')
        data = {**_hidden_fields(form), **fields}
        action = re.search(r'action="([^"]+)"', form)
        target = urljoin(page.url, action.group(1).replace("&amp;", "&") if action else page.url)
        return self.http.post(target, data=data, allow_redirects=False, timeout=15, headers={"Referer": page.url})


def _form_containing(html: str, marker: str) -> str:
    for form in re.findall(r"<form.*?</form>", html, flags=re.S):
        if marker in form:
            return form
    raise FlowError("form not found")


def _hidden_fields(form: str) -> dict[str, str]:
    found = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form)
    return {name: value.replace("&amp;", "&") for name, value in found}


@dataclass
class MobileApp:
    issuer: str
    client_id: str
    device: IOSDevice | AndroidDevice
    redirect_uri: str = "com.example.vigil:/oauthredirect"
    dpop_key: ECKey = field(default_factory=lambda: ECKey.generate_key("P-256", private=True))
    integrity: str = "classic"
    http: requests.Session = field(default_factory=requests.Session)
    refresh_token: str = ""
    access_token: str = ""
    next_challenge: str = ""
    #: False: a device that cannot attest, signing in through the fallback (docs/unattested-devices.md)
    attested: bool = True
    unavailable_reason: str = "not_supported"

    @property
    def platform(self) -> str:
        return "iOS" if isinstance(self.device, IOSDevice) else "Android"

    def jkt(self) -> str:
        return thumbprint(self.dpop_key.as_dict(private=False))

    def _proof(self) -> str:
        return create_proof(self.dpop_key, method="POST", url=f"{self.issuer}/token")

    def challenge(self, purpose: str) -> str:
        response = self.http.post(f"{self.issuer}/attestation/challenge",
                                  data={"client_id": self.client_id, "purpose": purpose}, timeout=15)
        if response.status_code != 200:
            raise FlowError(f"challenge refused: {response.text[:200]}")
        return response.json()["attestation_challenge"]

    def _evidence(self, binding: RequestBinding, purpose: str) -> dict[str, str]:
        if not self.attested:
            if purpose != "enroll":
                return {}  # an unattested refresh: the DPoP proof alone
            return {"attestation_type": "none", "attestation_platform": self.platform.lower(),
                    "attestation_unavailable_reason": self.unavailable_reason,
                    "attestation_challenge": binding.challenge}
        if isinstance(self.device, IOSDevice):
            if purpose == "enroll":
                return self.device.enrollment_params(binding)
            return self.device.assertion_params(binding)
        if purpose == "enroll":
            return self.device.enrollment_params(binding, integrity=self.integrity)
        return self.device.refresh_params(binding, integrity=self.integrity)

    def login(self, username: str, password: str, *, otp: Callable[[], str] | None = None,
              scope: str = "openid profile email offline_access") -> requests.Response:
        verifier = secrets.token_urlsafe(48)
        challenge = b64url_encode(hashlib.sha256(verifier.encode()).digest())
        state = secrets.token_urlsafe(12)
        query = {"response_type": "code", "client_id": self.client_id, "redirect_uri": self.redirect_uri,
                 "scope": scope, "state": state, "nonce": secrets.token_urlsafe(12),
                 "code_challenge": challenge, "code_challenge_method": "S256"}
        callback = BrowserAgent().run(f"{self.issuer}/authorize?{urlencode(query)}", self.redirect_uri,
                                      username, password, otp)
        params = {k: v[0] for k, v in parse_qs(urlsplit(callback).query).items()}
        if params.get("state") != state or params.get("iss") != self.issuer or "code" not in params:
            raise FlowError(f"bad authorization response: {params}")
        device = self.device
        token = device.devicecheck_token() if isinstance(device, IOSDevice) and device.devicecheck else ""
        binding = RequestBinding(self.challenge("enroll"), self.client_id, "authorization_code",
                                 grant_hash(params["code"]), dpop_jkt=self.jkt(), devicecheck=devicecheck_hash(token))
        data = {"grant_type": "authorization_code", "code": params["code"], "redirect_uri": self.redirect_uri,
                "client_id": self.client_id, "code_verifier": verifier, **self._evidence(binding, "enroll")}
        if token:
            data["devicecheck_token"] = token
        return self._token(data)

    def refresh(self, evidence: dict[str, str] | None = None) -> requests.Response:
        value = self.next_challenge or self.challenge("refresh")
        binding = RequestBinding(value, self.client_id, "refresh_token", grant_hash(self.refresh_token),
                                 dpop_jkt=self.jkt())
        data = {"grant_type": "refresh_token", "refresh_token": self.refresh_token, "client_id": self.client_id,
                **(evidence if evidence is not None else self._evidence(binding, "refresh"))}
        return self._token(data)

    def upgrade(self) -> requests.Response:
        """An unattested app that can attest now: a new key attested over the refresh binding,
        with the ``enroll`` challenge the last token response offered."""
        value = self.next_challenge or self.challenge("enroll")
        binding = RequestBinding(value, self.client_id, "refresh_token", grant_hash(self.refresh_token),
                                 dpop_jkt=self.jkt())
        if isinstance(self.device, IOSDevice):
            evidence = self.device.enrollment_params(binding)
        else:
            evidence = self.device.enrollment_params(binding, integrity=self.integrity)
        response = self.refresh(evidence)
        if response.status_code == 200:
            self.attested = True
        return response

    def _token(self, data: dict[str, Any]) -> requests.Response:
        response = self.http.post(f"{self.issuer}/token", data=data, headers={"DPoP": self._proof()}, timeout=30)
        self.next_challenge = response.headers.get(CHALLENGE_HEADER, "")
        if response.status_code == 200:
            body = response.json()
            self.refresh_token, self.access_token = body["refresh_token"], body["access_token"]
        return response

    def userinfo(self) -> requests.Response:
        url = f"{self.issuer}/userinfo"
        proof = create_proof(self.dpop_key, method="GET", url=url, access_token=self.access_token)
        return self.http.get(url, headers={"Authorization": f"DPoP {self.access_token}", "DPoP": proof}, timeout=15)
