"""RFC 7638 JWK thumbprints (the ``jkt`` of RFC 9449 §6.1 and of the attestation binding)."""

from __future__ import annotations

from typing import Any

import pytest
from joserfc.jwk import ECKey, OKPKey, RSAKey

from attestation.binding import RequestBinding
from sessions.dpop import thumbprint
from sessions.dpop.client import public_jwk
from sessions.dpop.jwk import has_private_members

# RFC 7638 §3.1: the example RSA key and its published SHA-256 thumbprint.
RFC7638_KEY = {
    "kty": "RSA",
    "n": (
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECP"
        "ebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2Qvzq"
        "Y368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0"
        "fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
    ),
    "e": "AQAB",
    "alg": "RS256",
    "kid": "2011-04-29",
}
RFC7638_THUMBPRINT = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_rfc7638_example() -> None:
    assert thumbprint(RFC7638_KEY) == RFC7638_THUMBPRINT


def test_optional_members_do_not_change_the_thumbprint() -> None:
    bare = {k: RFC7638_KEY[k] for k in ("kty", "n", "e")}
    assert thumbprint({**bare, "use": "sig", "key_ops": ["verify"]}) == thumbprint(bare) == RFC7638_THUMBPRINT


def test_rfc9449_example_key() -> None:
    key = {"kty": "EC", "x": "l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs", "y": "9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA", "crv": "P-256"}
    assert thumbprint(key) == "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"  # RFC 9449 §6.1


@pytest.mark.parametrize("key_name", ["ec_key", "rsa_key", "ed_key"])
def test_agrees_with_joserfc_for_every_key_type(request: pytest.FixtureRequest, key_name: str) -> None:
    key = request.getfixturevalue(key_name)
    assert thumbprint(public_jwk(key)) == key.thumbprint()
    assert thumbprint(key.as_dict(private=True)) == key.thumbprint()  # private members are not hashed


@pytest.mark.parametrize("jwk", [{}, {"kty": "XYZ"}, {"kty": "EC", "crv": "P-256", "x": "a"}, {"kty": "RSA", "n": 1, "e": "AQAB"}])
def test_invalid_jwk(jwk: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        thumbprint(jwk)


def test_private_members_detected(ec_key: ECKey, rsa_key: RSAKey, ed_key: OKPKey) -> None:
    for key in (ec_key, rsa_key, ed_key):
        assert has_private_members(key.as_dict(private=True))
        assert not has_private_members(public_jwk(key))
    assert has_private_members({"kty": "oct", "k": "c2VjcmV0"})


def test_thumbprint_is_what_the_attestation_binding_carries(ec_key: ECKey) -> None:
    """``dpop_jkt`` in the attestation client data is this thumbprint (attestation/binding.py)."""
    binding = RequestBinding(challenge="c", client_id="app", grant="refresh_token", grant_hash="h", dpop_jkt=thumbprint(public_jwk(ec_key)))
    assert f'"dpop_jkt":"{ec_key.thumbprint()}"'.encode() in binding.client_data()
