"""Google's ``decodeIntegrityToken`` is a remote call on the deployment's daily quota
(attestation/android/play_integrity_api.py): at the token endpoint it is made only once every
cheap local check has passed. A request that fails one (an unknown, used or revoked refresh
token or code, another client, a wrong PKCE verifier, a missing, foreign or replayed DPoP proof,
an unknown or spent challenge, a key signature or Key Attestation chain over another binding)
is refused without reaching Google, and changes nothing. Each request below carries a standard
integrity token that would decode, so a decode made too early would show."""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings as django_settings
from joserfc.jwk import ECKey

from attestation.binding import RequestBinding, grant_hash
from attestation.models import Device
from attestation.testing import google_pki as g
from idp.tests.conftest import MOBILE_REDIRECT, get_code, make_pkce
from sessions.dpop.client import create_proof
from sessions.models import DeviceSession, RefreshToken

from .test_device_bound_tokens import HEADER, App, android_app, challenge, pixel, token_post  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("allow_test_roots")]


def decodes(google: g.GoogleStandIn) -> int:
    return sum(path.endswith(":decodeIntegrityToken") for _, path, _ in google.requests)


def rows() -> tuple[list[Any], list[Any], int]:
    return (list(RefreshToken.objects.order_by("pk").values_list("pk", "rotated_at", "revoked_at")),
            list(DeviceSession.objects.order_by("pk").values_list("pk", "status")), Device.objects.count())


def proof(key: ECKey | None) -> str:
    assert key is not None
    return create_proof(key, method="POST", url=f"{django_settings.IDP_ISSUER}/token")


def refresh_data(pixel: App, *, token: str | None = None, value: str | None = None, **binding: Any) -> dict[str, Any]:
    """A refresh of ``token`` (the app's by default) with evidence that would pass, standard verdict included."""
    token = pixel.refresh_token if token is None else token
    bound = RequestBinding(value or challenge(pixel.client_id, "refresh"), pixel.client_id, "refresh_token",
                           grant_hash(binding.pop("bound_secret", token)), dpop_jkt=binding.pop("jkt", pixel.jkt()))
    return {"grant_type": "refresh_token", "refresh_token": token, "client_id": pixel.client_id,
            **pixel.device.refresh_params(bound)}


@pytest.fixture
def enrolled(pixel: App, google: g.GoogleStandIn) -> App:
    assert pixel.login().status_code == 200
    assert decodes(google) == 1
    return pixel


REFRESH_REFUSALS = {
    "unknown refresh token": lambda app: (refresh_data(app, token="not-a-refresh-token"), proof(app.dpop)),
    "another client": lambda app: ({**refresh_data(app), "client_id": "someone-else"}, proof(app.dpop)),
    "no DPoP proof": lambda app: (refresh_data(app), None),
    "a DPoP proof of another key": lambda app: (
        refresh_data(app), proof(ECKey.generate_key("P-256", private=True))),
    "an unknown challenge": lambda app: (refresh_data(app, value="not-a-challenge"), proof(app.dpop)),
    "a challenge for enrollment": lambda app: (
        refresh_data(app, value=challenge(app.client_id, "enroll")), proof(app.dpop)),
    "a signature over another refresh token": lambda app: (
        refresh_data(app, bound_secret="another-refresh-token"), proof(app.dpop)),
}


@pytest.mark.parametrize("forged", list(REFRESH_REFUSALS), ids=str)
def test_a_refresh_failing_a_local_check_never_reaches_google(
    enrolled: App, google: g.GoogleStandIn, forged: str
) -> None:
    data, dpop = REFRESH_REFUSALS[forged](enrolled)
    before = rows()
    response = token_post(data, **({"HTTP_DPOP": dpop} if dpop else {}))
    assert response.status_code in (400, 401), response.content
    assert decodes(google) == 1  # the enrollment's only
    assert rows() == before


def test_a_replayed_request_reaches_google_once(enrolled: App, google: g.GoogleStandIn) -> None:
    """The same refresh sent twice, DPoP proof and all: the proof's jti (RFC 9449 §11.1) is
    marked before the challenge is claimed and before Google is asked."""
    data, dpop = refresh_data(enrolled), proof(enrolled.dpop)
    assert token_post(data, HTTP_DPOP=dpop).status_code == 200
    before = rows()
    replayed = token_post(data, HTTP_DPOP=dpop)
    assert replayed.status_code == 400 and replayed.json()["error"] == "invalid_dpop_proof"
    assert decodes(google) == 2 and rows() == before


def test_a_spent_challenge_never_reaches_google(enrolled: App, google: g.GoogleStandIn) -> None:
    spent = enrolled.next_challenge
    assert enrolled.refresh().status_code == 200 and decodes(google) == 2
    before = rows()
    again = token_post(refresh_data(enrolled, value=spent), HTTP_DPOP=proof(enrolled.dpop))
    assert again.json()["error"] == "use_attestation_challenge"
    assert "challenge_reused" in again.json()["error_description"]
    assert decodes(google) == 2 and rows() == before


def test_a_reused_refresh_token_never_reaches_google(enrolled: App, google: g.GoogleStandIn) -> None:
    """Two rotations back (the immediate predecessor is a lost answer's retry, served with fresh
    evidence): reuse, judged by the lifecycle before any attestation, revokes the family."""
    reused = enrolled.refresh_token
    assert enrolled.refresh().status_code == 200 and enrolled.refresh().status_code == 200
    assert decodes(google) == 3
    response = token_post(refresh_data(enrolled, token=reused), HTTP_DPOP=proof(enrolled.dpop))
    assert response.json()["error"] == "invalid_grant"
    assert decodes(google) == 3


def test_a_revoked_familys_refresh_never_reaches_google(enrolled: App, google: g.GoogleStandIn) -> None:
    from sessions.flows import revocation

    revocation.revoke_session(DeviceSession.objects.get(), revocation.Reason.REVOKED_BY_ADMIN)
    before = rows()
    response = token_post(refresh_data(enrolled), HTTP_DPOP=proof(enrolled.dpop))
    assert response.json()["error"] == "invalid_grant"
    assert decodes(google) == 1 and rows() == before


# --- the code exchange (enrollment) -------------------------------------------------------------


def _exchange(app: App, code: str, verifier: str, *, value: str | None = None, chain_secret: str | None = None,
              **overrides: Any) -> Any:
    bound = RequestBinding(value or challenge(app.client_id, "enroll"), app.client_id, "authorization_code",
                           grant_hash(code), dpop_jkt=app.jkt())
    evidence = app.device.enrollment_params(bound)
    if chain_secret is not None:  # a genuine chain, attesting the binding of another code
        other = RequestBinding(bound.challenge, app.client_id, "authorization_code", grant_hash(chain_secret),
                               dpop_jkt=app.jkt())
        evidence["attestation"] = app.device.attest(other.client_data_hash())
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": MOBILE_REDIRECT,
            "client_id": app.client_id, "code_verifier": verifier, **evidence, **overrides}
    return token_post(data, HTTP_DPOP=proof(app.dpop))


CODE_REFUSALS: dict[str, dict[str, Any]] = {
    "unknown code": {"code": "not-a-code"},
    "a wrong PKCE verifier": {"code_verifier": make_pkce().verifier},
    "another redirect URI": {"redirect_uri": "http://127.0.0.1/callback"},
    "another client": {"client_id": "someone-else"},
    "an unknown challenge": {"value": "not-a-challenge"},
    "a chain attesting another code": {"chain_secret": "another-code"},
}


@pytest.mark.parametrize("forged", list(CODE_REFUSALS), ids=str)
def test_a_code_exchange_failing_a_local_check_never_reaches_google(
    pixel: App, google: g.GoogleStandIn, forged: str
) -> None:
    pkce = make_pkce()
    code, _ = get_code(pixel.browser, pixel.client_id, pkce)
    overrides = dict(CODE_REFUSALS[forged])
    response = _exchange(pixel, overrides.pop("code", code), overrides.pop("code_verifier", pkce.verifier),
                         **overrides)
    assert response.status_code in (400, 401), response.content
    assert decodes(google) == 0 and rows() == ([], [], 0)
    assert _exchange(pixel, code, pkce.verifier).status_code == 200  # the code was left unused
    assert decodes(google) == 1


def test_a_used_code_never_reaches_google(pixel: App, google: g.GoogleStandIn) -> None:
    pkce = make_pkce()
    code, _ = get_code(pixel.browser, pixel.client_id, pkce)
    assert _exchange(pixel, code, pkce.verifier).status_code == 200
    assert decodes(google) == 1
    _exchange(pixel, code, pkce.verifier)  # reuse (or a retry): judged without a new enrollment
    assert decodes(google) == 1
