"""RFC 9449 §4.3: every check of a DPoP proof, each forged to fail alone with its reason.

Real keys and real signatures; time is passed as ``now=`` (one test freezes the clock).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from datetime import UTC, timedelta
from typing import Any

import pytest
import time_machine
from joserfc.errors import SecurityWarning
from joserfc.jwk import ECKey, OKPKey, RSAKey

from sessions.dpop import DPoPError, Reason, access_token_hash, thumbprint, verify_proof
from sessions.dpop.client import public_jwk, sign_compact

from .conftest import DPOP_NOW, TOKEN_URL

RESOURCE_URL = "https://api.example/v1/me"
ACCESS_TOKEN = "eyJhbGciOiJFUzI1NiJ9.at.sig"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64json(value: Any) -> str:
    return b64(json.dumps(value).encode())


def claims(**overrides: Any) -> dict[str, Any]:
    base = {"jti": "jti-1", "htm": "POST", "htu": TOKEN_URL, "iat": int(DPOP_NOW.timestamp())}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def header_for(key: Any, alg: str = "ES256", **overrides: Any) -> dict[str, Any]:
    base = {"typ": "dpop+jwt", "alg": alg, "jwk": public_jwk(key)}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def verify(proof: str, **kwargs: Any) -> Any:
    kwargs.setdefault("method", "POST")
    kwargs.setdefault("url", TOKEN_URL)
    kwargs.setdefault("now", DPOP_NOW)
    return verify_proof(proof, **kwargs)


def refused(proof: Any, reason: str, **kwargs: Any) -> DPoPError:
    with pytest.raises(DPoPError) as info:
        verify(proof, **kwargs)
    assert info.value.reason == reason, info.value
    assert info.value.error == ("use_dpop_nonce" if reason.startswith("dpop_nonce") else "invalid_dpop_proof")
    return info.value


# ----------------------------------------------------------------------------- success
@pytest.mark.parametrize("key_name, alg", [("ec_key", "ES256"), ("rsa_key", "RS256"), ("rsa_key", "PS256"), ("ed_key", "EdDSA")])
def test_valid_proof_with_each_algorithm(request: pytest.FixtureRequest, make_proof: Callable[..., str], key_name: str, alg: str) -> None:
    key = request.getfixturevalue(key_name)
    proof = verify(make_proof(key, alg=alg, jti="j-" + alg))

    assert proof.jkt == thumbprint(public_jwk(key)) == key.thumbprint()
    assert proof.alg == alg
    assert (proof.jti, proof.htm, proof.htu, proof.iat) == ("j-" + alg, "POST", TOKEN_URL, DPOP_NOW)
    assert "d" not in proof.jwk and proof.nonce is None and proof.ath is None


def test_resource_request_with_access_token(make_proof: Callable[..., str], ec_key: ECKey) -> None:
    proof = make_proof(method="GET", url=RESOURCE_URL + "?fields=email", access_token=ACCESS_TOKEN)

    result = verify(proof, method="GET", url=RESOURCE_URL + "?fields=name", access_token=ACCESS_TOKEN, expected_jkt=ec_key.thumbprint())

    assert result.ath == access_token_hash(ACCESS_TOKEN)


def test_clock_is_timezone_now_by_default(make_proof: Callable[..., str]) -> None:
    proof = make_proof()
    with time_machine.travel(DPOP_NOW + timedelta(seconds=100), tick=False):
        assert verify_proof(proof, method="POST", url=TOKEN_URL).jti
    with time_machine.travel(DPOP_NOW + timedelta(seconds=331), tick=False):
        with pytest.raises(DPoPError, match=Reason.IAT_STALE):
            verify_proof(make_proof(jti="other"), method="POST", url=TOKEN_URL)


# ----------------------------------------------------------------------------- RFC 9449 vectors
RFC9449_JKT = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"  # §6.1
RFC9449_TOKEN_PROOF = (  # §4.1, Figure 4
    "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6IkVDIiwieCI6Imw4dEZyaHgtMzR0VjNoUklDUkRZOXpDa0RscEJoRjQyVVFVZldWQVdCRnMiLCJ5IjoiOVZFNGpmX09rX282NHpiVFRsY3VOSmFqSG10NnY5VERWclUwQ2R2R1JEQSIsImNydiI6IlAtMjU2In19"
    ".eyJqdGkiOiItQndDM0VTYzZhY2MybFRjIiwiaHRtIjoiUE9TVCIsImh0dSI6Imh0dHBzOi8vc2VydmVyLmV4YW1wbGUuY29tL3Rva2VuIiwiaWF0IjoxNTYyMjYyNjE2fQ"
    ".2-GxA6T8lP4vfrg8v-FdWP0A0zdrj8igiMLvqRMUvwnQg4PtFLbdLXiOSsX0x7NVY-FNyJK70nfbV37xRZT3Lg"
)
RFC9449_RESOURCE_PROOF = (  # §7.1, Figure 13
    "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6IkVDIiwieCI6Imw4dEZyaHgtMzR0VjNoUklDUkRZOXpDa0RscEJoRjQyVVFVZldWQVdCRnMiLCJ5IjoiOVZFNGpmX09rX282NHpiVFRsY3VOSmFqSG10NnY5VERWclUwQ2R2R1JEQSIsImNydiI6IlAtMjU2In19"
    ".eyJqdGkiOiJlMWozVl9iS2ljOC1MQUVCIiwiaHRtIjoiR0VUIiwiaHR1IjoiaHR0cHM6Ly9yZXNvdXJjZS5leGFtcGxlLm9yZy9wcm90ZWN0ZWRyZXNvdXJjZSIsImlhdCI6MTU2MjI2MjYxOCwiYXRoIjoiZlVIeU8ycjJaM0RaNTNFc05yV0JiMHhXWG9hTnk1OUlpS0NBcWtzbVFFbyJ9"
    ".2oW9RP35yRqzhrtNP86L-Ey71EOptxRimPPToA1plemAgR6pxHF8y6-yqyVnmcw6Fy1dqd-jfxSYoMxhAJpLjA"
)
RFC9449_ACCESS_TOKEN = "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"  # §7.1, ath fUHyO2r2...


def test_rfc9449_token_request_example() -> None:
    from datetime import datetime

    proof = verify(RFC9449_TOKEN_PROOF, url="https://server.example.com/token", now=datetime.fromtimestamp(1562262616, UTC))

    assert proof.jkt == RFC9449_JKT
    assert proof.jti == "-BwC3ESc6acc2lTc"


def test_rfc9449_resource_request_example() -> None:
    from datetime import datetime

    proof = verify(
        RFC9449_RESOURCE_PROOF,
        method="GET",
        url="https://resource.example.org/protectedresource",
        access_token=RFC9449_ACCESS_TOKEN,
        expected_jkt=RFC9449_JKT,
        now=datetime.fromtimestamp(1562262618, UTC),
    )

    assert proof.ath == access_token_hash(RFC9449_ACCESS_TOKEN) == "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"


# ----------------------------------------------------------------------------- check 2: well-formed JWT
@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "not a jwt",
        "a.b",
        "a.b.c.d",
        "!!!.@@@.###",
        "eyJ.eyJ.sig",
        b64json([1, 2]) + "." + b64json({}) + ".",
        b64json({"typ": "dpop+jwt"}) + "." + b64json("string") + ".",
        b64(b"\xff\xfe") + "." + b64json({}) + ".",
        b64json({"alg": "ES256"}) + "=." + b64json({}) + ".",
        "x" * 10_000,
        None,
        b"bytes.are.not-a-str",
        12345,
    ],
)
def test_garbage_is_malformed(garbage: Any) -> None:
    refused(garbage, Reason.MALFORMED)


def test_duplicate_json_members_are_malformed(ec_key: ECKey) -> None:
    header = b64(b'{"typ":"dpop+jwt","alg":"ES256","alg":"none"}')
    refused(f"{header}.{b64json(claims())}.", Reason.MALFORMED)


def test_deeply_nested_json_is_malformed() -> None:
    refused(b64(b"[" * 5000) + "." + b64json({}) + ".", Reason.MALFORMED)


def test_non_finite_number_is_malformed(ec_key: ECKey) -> None:
    payload = b64(b'{"jti": "j", "htm": "POST", "htu": "https://vigil.example/oauth/token", "iat": NaN}')
    refused(f"{b64json(header_for(ec_key))}.{payload}.", Reason.MALFORMED)


def test_crit_header_is_refused(ec_key: ECKey) -> None:
    proof = sign_compact(header_for(ec_key, crit=["exp"], exp=1), claims(), ec_key)
    refused(proof, Reason.MALFORMED)


# ----------------------------------------------------------------------------- check 4: typ
@pytest.mark.parametrize("typ", ["JWT", "at+jwt", "DPOP+JWT", "application/dpop+jwt", None, 1])
def test_wrong_typ(ec_key: ECKey, typ: Any) -> None:
    refused(sign_compact(header_for(ec_key, typ=typ), claims(), ec_key), Reason.BAD_TYP)


# ----------------------------------------------------------------------------- check 5: alg
def test_alg_none_is_refused(ec_key: ECKey) -> None:
    proof = f"{b64json(header_for(ec_key, alg='none'))}.{b64json(claims())}."
    refused(proof, Reason.BAD_ALG)


@pytest.mark.parametrize("secret_form", ["pem", "jwk"])
def test_algorithm_confusion_hs256_with_public_key_as_secret(ec_key: ECKey, secret_form: str) -> None:
    """The classic attack: sign with HMAC using the (public) verification key as the secret."""
    secret = ec_key.as_pem(private=False) if secret_form == "pem" else json.dumps(public_jwk(ec_key)).encode()
    signing_input = f"{b64json(header_for(ec_key, alg='HS256'))}.{b64json(claims())}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    refused(f"{signing_input}.{b64(signature)}", Reason.BAD_ALG)


def test_settings_cannot_enable_symmetric_or_none(settings: Any, ec_key: ECKey) -> None:
    settings.SESSIONS_DPOP_ALGS = "HS256, none, ES256"
    signing_input = f"{b64json(header_for(ec_key, alg='HS256'))}.{b64json(claims())}"
    forged = f"{signing_input}.{b64(hmac.new(ec_key.as_pem(private=False), signing_input.encode(), hashlib.sha256).digest())}"

    refused(forged, Reason.BAD_ALG)
    refused(f"{b64json(header_for(ec_key, alg='none'))}.{b64json(claims())}.", Reason.BAD_ALG)


def test_alg_outside_the_configured_list(settings: Any, make_proof: Callable[..., str], rsa_key: RSAKey) -> None:
    settings.SESSIONS_DPOP_ALGS = ["ES256"]
    refused(make_proof(rsa_key, alg="PS256"), Reason.BAD_ALG)


@pytest.mark.parametrize("alg", ["ES384", "RS512", "Ed25519", "", 256])
def test_unsupported_alg(ec_key: ECKey, alg: Any) -> None:
    refused(f"{b64json(header_for(ec_key, alg=alg))}.{b64json(claims())}.c2ln", Reason.BAD_ALG)


# ----------------------------------------------------------------------------- check 7 (before 6): jwk
def test_missing_jwk(ec_key: ECKey) -> None:
    refused(sign_compact({"typ": "dpop+jwt", "alg": "ES256"}, claims(), ec_key), Reason.MISSING_JWK)


def test_jwk_reference_instead_of_jwk(ec_key: ECKey) -> None:
    header = {"typ": "dpop+jwt", "alg": "ES256", "kid": "k1", "jku": "https://attacker.example/jwks"}
    refused(sign_compact(header, claims(), ec_key), Reason.MISSING_JWK)


@pytest.mark.parametrize("key_name, alg", [("ec_key", "ES256"), ("rsa_key", "PS256"), ("ed_key", "EdDSA")])
def test_private_key_in_jwk_header(request: pytest.FixtureRequest, key_name: str, alg: str) -> None:
    key = request.getfixturevalue(key_name)
    header = header_for(key, alg=alg, jwk=key.as_dict(private=True))
    refused(sign_compact(header, claims(), key), Reason.PRIVATE_KEY)


def test_symmetric_jwk_is_refused(ec_key: ECKey) -> None:
    header = header_for(ec_key, jwk={"kty": "oct", "k": "c2VjcmV0"})
    refused(sign_compact(header, claims(), ec_key), Reason.PRIVATE_KEY)


def test_jwk_type_not_matching_alg(ec_key: ECKey, rsa_key: RSAKey) -> None:
    proof = sign_compact(header_for(rsa_key, alg="RS256", jwk=public_jwk(ec_key)), claims(), rsa_key)
    refused(proof, Reason.BAD_KEY)


def test_jwk_curve_not_matching_alg(ec_key: ECKey) -> None:
    p384 = ECKey.generate_key("P-384")
    refused(sign_compact(header_for(ec_key, jwk=public_jwk(p384)), claims(), ec_key), Reason.BAD_KEY)


def test_weak_rsa_key(make_proof: Callable[..., str]) -> None:
    with pytest.warns(SecurityWarning):
        weak = RSAKey.generate_key(1024)
    refused(make_proof(weak, alg="RS256"), Reason.BAD_KEY)


def test_oversized_rsa_modulus(rsa_key: RSAKey) -> None:
    jwk = {**public_jwk(rsa_key), "n": b64(b"\xff" * 1100)}
    refused(sign_compact(header_for(rsa_key, alg="RS256", jwk=jwk), claims(), rsa_key), Reason.BAD_KEY)


def test_point_not_on_curve(ec_key: ECKey) -> None:
    jwk = dict(public_jwk(ec_key))
    jwk["y"] = jwk["x"]
    refused(sign_compact(header_for(ec_key, jwk=jwk), claims(), ec_key), Reason.BAD_KEY)


# ----------------------------------------------------------------------------- check 6: signature
def test_tampered_payload(make_proof: Callable[..., str]) -> None:
    header, _, signature = make_proof().split(".")
    refused(f"{header}.{b64json(claims(htu='https://attacker.example/token'))}.{signature}", Reason.BAD_SIGNATURE)


def test_signed_by_another_key_than_the_header_jwk(ec_key: ECKey) -> None:
    other = ECKey.generate_key("P-256")
    refused(sign_compact(header_for(other), claims(), ec_key), Reason.BAD_SIGNATURE)


def test_empty_signature(make_proof: Callable[..., str]) -> None:
    header, payload, _ = make_proof().split(".")
    refused(f"{header}.{payload}.", Reason.BAD_SIGNATURE)


def test_rs256_signature_presented_as_ps256(rsa_key: RSAKey) -> None:
    header, payload, signature = sign_compact(header_for(rsa_key, alg="RS256"), claims(), rsa_key).split(".")
    relabelled = b64json(header_for(rsa_key, alg="PS256"))
    refused(f"{relabelled}.{payload}.{signature}", Reason.BAD_SIGNATURE)


# ----------------------------------------------------------------------------- check 3: claims
@pytest.mark.parametrize("missing", ["jti", "htm", "htu", "iat"])
def test_missing_claim(ec_key: ECKey, missing: str) -> None:
    refused(sign_compact(header_for(ec_key), claims(**{missing: None}), ec_key), Reason.MISSING_CLAIM)


@pytest.mark.parametrize(
    "bad",
    [{"jti": ""}, {"jti": 7}, {"htm": ["POST"]}, {"htu": 1}, {"iat": "1764331200"}, {"iat": True}, {"nonce": 1}, {"ath": {}}],
)
def test_malformed_claim(ec_key: ECKey, bad: dict[str, Any]) -> None:
    refused(sign_compact(header_for(ec_key), {**claims(), **bad}, ec_key), Reason.MALFORMED_CLAIM)


# ----------------------------------------------------------------------------- check 8: htm
@pytest.mark.parametrize("method", ["GET", "post", "PUT"])
def test_htm_mismatch(make_proof: Callable[..., str], method: str) -> None:
    refused(make_proof(), Reason.HTM_MISMATCH, method=method)


# ----------------------------------------------------------------------------- check 9: htu
@pytest.mark.parametrize(
    "request_url",
    [
        "https://vigil.example/oauth/authorize",
        "https://attacker.example/oauth/token",
        "http://vigil.example/oauth/token",
        "https://vigil.example:8443/oauth/token",
        "https://vigil.example/oauth/token/",
        "https://vigil.example/OAUTH/token",
    ],
)
def test_htu_mismatch(make_proof: Callable[..., str], request_url: str) -> None:
    refused(make_proof(), Reason.HTU_MISMATCH, url=request_url)


@pytest.mark.parametrize(
    "request_url",
    [
        "https://vigil.example/oauth/token?grant_type=refresh_token",
        "https://vigil.example/oauth/token#fragment",
        "HTTPS://VIGIL.EXAMPLE/oauth/token",
        "https://vigil.example:443/oauth/token",
        "https://vigil.example/oauth/./x/../token",
        "https://vigil.example/%6Fauth/token",
    ],
)
def test_htu_normalised_match(make_proof: Callable[..., str], request_url: str) -> None:
    assert verify(make_proof(jti=request_url), url=request_url).htu == TOKEN_URL


def test_htu_with_control_characters_is_refused(ec_key: ECKey) -> None:
    proof = sign_compact(header_for(ec_key), claims(htu="https://vigil.example/oauth/to\nken"), ec_key)
    refused(proof, Reason.HTU_MISMATCH)


# ----------------------------------------------------------------------------- check 11: iat
def test_iat_at_the_edges_of_the_window(make_proof: Callable[..., str]) -> None:
    verify(make_proof(jti="old", now=DPOP_NOW - timedelta(seconds=330)))
    verify(make_proof(jti="new", now=DPOP_NOW + timedelta(seconds=30)))


def test_stale_iat(make_proof: Callable[..., str]) -> None:
    refused(make_proof(now=DPOP_NOW - timedelta(seconds=331)), Reason.IAT_STALE)


def test_future_iat(make_proof: Callable[..., str]) -> None:
    refused(make_proof(now=DPOP_NOW + timedelta(seconds=31)), Reason.IAT_FUTURE)


def test_iat_window_follows_settings(settings: Any, make_proof: Callable[..., str]) -> None:
    settings.SESSIONS_DPOP_MAX_AGE = "60"
    settings.SESSIONS_DPOP_CLOCK_SKEW = "0"
    refused(make_proof(now=DPOP_NOW - timedelta(seconds=61)), Reason.IAT_STALE)
    refused(make_proof(now=DPOP_NOW + timedelta(seconds=1)), Reason.IAT_FUTURE)


def test_huge_iat_is_future_not_a_crash(ec_key: ECKey) -> None:
    refused(sign_compact(header_for(ec_key), claims(iat=10**400), ec_key), Reason.IAT_FUTURE)


# ----------------------------------------------------------------------------- check 12: ath and key binding
def test_ath_missing(make_proof: Callable[..., str]) -> None:
    refused(make_proof(method="GET", url=RESOURCE_URL), Reason.ATH_MISSING, method="GET", url=RESOURCE_URL, access_token=ACCESS_TOKEN)


def test_ath_of_another_token(make_proof: Callable[..., str]) -> None:
    proof = make_proof(method="GET", url=RESOURCE_URL, access_token="another-token")
    refused(proof, Reason.ATH_MISMATCH, method="GET", url=RESOURCE_URL, access_token=ACCESS_TOKEN)


def test_proof_from_another_key_than_the_token_is_bound_to(make_proof: Callable[..., str], ed_key: OKPKey, ec_key: ECKey) -> None:
    proof = make_proof(ed_key, method="GET", url=RESOURCE_URL, access_token=ACCESS_TOKEN)
    refused(proof, Reason.KEY_MISMATCH, method="GET", url=RESOURCE_URL, access_token=ACCESS_TOKEN, expected_jkt=ec_key.thumbprint())


# ----------------------------------------------------------------------------- §11.1: replay
def test_replayed_proof(make_proof: Callable[..., str]) -> None:
    proof = make_proof()
    verify(proof)
    refused(proof, Reason.REPLAY)


def test_same_jti_from_two_keys_is_not_a_replay(make_proof: Callable[..., str], ed_key: OKPKey) -> None:
    verify(make_proof(jti="shared"))
    verify(make_proof(ed_key, jti="shared"))


def test_refused_proof_does_not_burn_its_jti(make_proof: Callable[..., str]) -> None:
    """Negative test without side effect: a proof failing a check is not remembered."""
    refused(make_proof(jti="once", method="GET"), Reason.HTM_MISMATCH)
    verify(make_proof(jti="once"))


def test_replay_cache_entry_outlives_the_acceptance_window(make_proof: Callable[..., str]) -> None:
    """The cache clock is frozen too: the entry must still exist at the last accepted second."""
    proof = make_proof()
    with time_machine.travel(DPOP_NOW, tick=False) as clock:
        verify_proof(proof, method="POST", url=TOKEN_URL)
        clock.shift(timedelta(seconds=330))
        with pytest.raises(DPoPError, match=Reason.REPLAY):
            verify_proof(proof, method="POST", url=TOKEN_URL)
