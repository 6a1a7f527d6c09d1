"""Fuzzing ``verify_proof``: whatever arrives in the DPoP header, only ``DPoPError`` escapes."""

from __future__ import annotations

import base64
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from joserfc.jwk import ECKey

from sessions.dpop import DPoPError, verify_proof
from sessions.dpop.client import public_jwk, sign_compact

from .conftest import DPOP_NOW, TOKEN_URL

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
_KEY = ECKey.generate_key("P-256")

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def only_dpop_error(proof: Any, **kwargs: Any) -> None:
    try:
        verify_proof(proof, method="POST", url=TOKEN_URL, now=DPOP_NOW, **kwargs)
    except DPoPError as error:
        assert error.error in {"invalid_dpop_proof", "use_dpop_nonce"} and error.reason.startswith("dpop_")


@FUZZ
@given(st.text(max_size=400))
def test_random_text(proof: str) -> None:
    only_dpop_error(proof)


@FUZZ
@given(st.binary(max_size=400))
def test_random_bytes(raw: bytes) -> None:
    only_dpop_error(raw.decode("latin-1"))
    only_dpop_error(raw)


@FUZZ
@given(st.lists(st.binary(max_size=120), min_size=1, max_size=5))
def test_random_base64_segments(segments: list[bytes]) -> None:
    only_dpop_error(".".join(b64(s) for s in segments))


@FUZZ
@given(json_values, json_values)
def test_random_json_header_and_payload(header: Any, payload: Any) -> None:
    only_dpop_error(f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}.c2ln")


@FUZZ
@given(
    st.dictionaries(st.sampled_from(["typ", "alg", "jwk", "crit", "kid"]), json_values, max_size=5),
    st.dictionaries(st.sampled_from(["jti", "htm", "htu", "iat", "nonce", "ath"]), json_values, max_size=6),
    st.text(max_size=40) | st.none(),
)
def test_signed_proofs_with_random_members(header_overrides: dict[str, Any], claims: dict[str, Any], token: str | None) -> None:
    """Real signatures over hostile headers and claims reach the later checks."""
    header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": public_jwk(_KEY), **header_overrides}
    try:
        proof = sign_compact({**header, "alg": "ES256"}, claims, _KEY)
    except (TypeError, ValueError):  # json.dumps of an unusual value
        return
    only_dpop_error(proof, access_token=token, expected_jkt=token)
    only_dpop_error(proof, nonce_required=True)
