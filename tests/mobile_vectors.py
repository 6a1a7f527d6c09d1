"""Test vectors of the mobile integration guides (docs/mobile/vectors.json), computed with the
server's own code.

Every byte string an app computes for Vigil (the request binding, its hash, the Play Integrity
``nonce`` / ``requestHash``, the Android attestation challenge, the RFC 7638 thumbprint, the
DPoP proof's signing input and ``ath``, the Android key id) is derived here from fixed inputs
by the modules the server verifies with (``attestation.binding``, ``sessions.dpop``,
``attestation.android.chain``), so ``tests/test_mobile_guides.py`` can compare the stored
vectors, the values the guides show, and what the guides' Kotlin prints, with the server.

``python manage.py shell -c "from tests.mobile_vectors import write; write()"`` recomputes the
outputs after a deliberate change (``write(fresh=True)`` also mints new challenges and nonce:
their random bytes are inputs, not outputs); then update the values the guides show.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from attestation.android.key_attestation import AndroidKeyAttestation
from attestation.binding import RequestBinding, devicecheck_hash, grant_hash
from core.encoding import b64url_decode, b64url_encode
from sessions.dpop import thumbprint
from sessions.dpop.proof import access_token_hash

VECTORS = Path(__file__).resolve().parent.parent / "docs" / "mobile" / "vectors.json"
#: The SECRET_KEY the vector challenges and DPoP nonce were signed with (test only).
VECTOR_SECRET = "vigil-mobile-guide-vectors-not-a-real-secret"
#: 2026-01-01T00:00:00Z: the iat of the vector proofs and the time their nonce was issued.
VECTOR_IAT = 1767225600


def load() -> dict[str, Any]:
    return json.loads(VECTORS.read_text())


# ----------------------------------------------------------------------------- keys
def private_key(jwk: dict[str, str]) -> ec.EllipticCurvePrivateKey:
    return ec.derive_private_key(int.from_bytes(b64url_decode(jwk["d"]), "big"), ec.SECP256R1())


def _coordinate(value: int) -> str:
    return b64url_encode(value.to_bytes(32, "big"))


def key_jwk(key: ec.EllipticCurvePrivateKey) -> dict[str, str]:
    numbers = key.private_numbers()
    return {"kty": "EC", "crv": "P-256", "x": _coordinate(numbers.public_numbers.x),
            "y": _coordinate(numbers.public_numbers.y), "d": _coordinate(numbers.private_value)}


def _key_whose_x_starts_with_zero(label: str) -> ec.EllipticCurvePrivateKey:
    """A fixed key whose x coordinate has a leading zero byte: a client that drops it (BigInteger,
    SecKey without padding) computes another thumbprint, and the vector shows it."""
    for i in range(100_000):
        d = int.from_bytes(hashlib.sha256(f"{label}-{i}".encode()).digest(), "big")
        key = ec.derive_private_key(d, ec.SECP256R1())
        if key.public_key().public_numbers().x < 1 << 248:
            return key
    raise RuntimeError("no key found")


def public_jwk(jwk: dict[str, str]) -> dict[str, str]:
    return {name: jwk[name] for name in ("kty", "crv", "x", "y")}


# ----------------------------------------------------------------------------- outputs
def binding_output(inputs: dict[str, Any]) -> dict[str, str]:
    """What the app computes over one request (attestation.binding.RequestBinding)."""
    binding = RequestBinding(
        challenge=inputs["challenge"],
        client_id=inputs["client_id"],
        grant=inputs["grant"],
        grant_hash=grant_hash(inputs["grant_secret"]),
        dpop_jkt=inputs["dpop_jkt"],
        signals=inputs["signals"],
        devicecheck=devicecheck_hash(inputs.get("devicecheck_token", "")),  # iOS with DeviceCheck only
    )
    digest = binding.client_data_hash()
    return {
        "grant_hash": binding.grant_hash,
        "client_data": binding.client_data().decode("ascii"),
        "client_data_hash_hex": digest.hex(),
        "request_hash": binding.request_hash(),
    }


def thumbprint_output(jwk: dict[str, str]) -> dict[str, str]:
    return {"jkt": thumbprint(jwk)}


def _segment(value: dict[str, Any]) -> str:
    return b64url_encode(json.dumps(value, separators=(",", ":")).encode())


def proof_parts(inputs: dict[str, Any], jwk: dict[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The header and claims the guides' listings build, in their member order."""
    htu = inputs["url"].split("#")[0].split("?")[0]
    header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": public_jwk(jwk)}
    claims: dict[str, Any] = {"jti": inputs["jti"], "htm": inputs["method"], "htu": htu, "iat": inputs["iat"]}
    if inputs.get("access_token"):
        claims["ath"] = access_token_hash(inputs["access_token"])
    if inputs.get("nonce"):
        claims["nonce"] = inputs["nonce"]
    return header, claims


def proof_output(inputs: dict[str, Any], jwk: dict[str, str]) -> dict[str, str]:
    header, claims = proof_parts(inputs, jwk)
    out = {
        "htu": claims["htu"],
        "header_json": json.dumps(header, separators=(",", ":")),
        "payload_json": json.dumps(claims, separators=(",", ":")),
        "signing_input": f"{_segment(header)}.{_segment(claims)}",
    }
    if "ath" in claims:
        out["ath"] = claims["ath"]
    return out


def der_to_jose_output(der_hex: str) -> dict[str, str]:
    """RFC 7518 §3.4: the 64-byte R || S form of a DER ECDSA signature."""
    r, s = decode_dss_signature(bytes.fromhex(der_hex))
    return {"jose_hex": (r.to_bytes(32, "big") + s.to_bytes(32, "big")).hex()}


def android_key_id_output(jwk: dict[str, str]) -> dict[str, str]:
    """The device key id the server stores: SHA-256 hex of the SubjectPublicKeyInfo."""
    spki = private_key(jwk).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    verified = AndroidKeyAttestation(  # only the key matters to key_id
        public_key=private_key(jwk).public_key(), key_description=None,  # type: ignore[arg-type]
        security_level="tee", root_key_sha256="", serials=(), not_after=datetime.now(UTC),
    )
    return {"spki_hex": spki.hex(), "key_id_hex": verified.key_id}


# ----------------------------------------------------------------------------- refusals
#: What the app does next (the guides' refusal tables and their Kotlin ``nextStep``).
RETRY_WITH_DPOP_NONCE = "RETRY_WITH_DPOP_NONCE"
RETRY_WITH_NEW_CHALLENGE = "RETRY_WITH_NEW_CHALLENGE"
RETRY_AFTER_DELAY = "RETRY_AFTER_DELAY"
SYNC_CLOCK_AND_RETRY = "SYNC_CLOCK_AND_RETRY"
SIGN_IN_AGAIN = "SIGN_IN_AGAIN"
REATTEST_AND_SIGN_IN = "REATTEST_AND_SIGN_IN"
SHOW_MESSAGE = "SHOW_MESSAGE"
FIX_THE_APP = "FIX_THE_APP"

#: ``invalid_client_attestation`` reasons -> what the app does (every ``attestation.errors.Reason``
#: that answers ``invalid_client_attestation``; the use_attestation_challenge ones retry).
ATTESTATION_ACTIONS: dict[str, str] = {
    "verdict_stale": RETRY_WITH_NEW_CHALLENGE,
    "counter_not_increasing": RETRY_WITH_NEW_CHALLENGE,
    "security_level_insufficient": SHOW_MESSAGE,
    "boot_state_unverified": SHOW_MESSAGE,
    "bootloader_unlocked": SHOW_MESSAGE,
    "integrity_verdict_insufficient": SHOW_MESSAGE,
    "app_not_recognized": SHOW_MESSAGE,
    "unlicensed": SHOW_MESSAGE,
    "app_access_risk": SHOW_MESSAGE,
    "device_suspended": SHOW_MESSAGE,
    "certificate_revoked": SHOW_MESSAGE,
    "chain_untrusted": SHOW_MESSAGE,
    "chain_expired": SHOW_MESSAGE,
    "signature_invalid": REATTEST_AND_SIGN_IN,
    "device_revoked": SHOW_MESSAGE,
}
#: Everything else is a bug in the app or its registration: log it, do not loop.

#: ``error`` codes whose action does not depend on the reason.
ERROR_ACTIONS: dict[str, str] = {
    "use_dpop_nonce": RETRY_WITH_DPOP_NONCE,
    "use_attestation_challenge": RETRY_WITH_NEW_CHALLENGE,
    "temporarily_unavailable": RETRY_AFTER_DELAY,
    "slow_down": RETRY_AFTER_DELAY,
}


def _attestation_refusals(reason: str) -> list[dict[str, Any]]:
    """The bodies the token endpoint answers for an attestation ``reason`` (idp.oauth.attestation_binding)."""
    from authlib.oauth2 import OAuth2Error

    from attestation.errors import AttestationError
    from idp.oauth.attestation_binding import NOTHING_TO_VERIFY, _refuse, _what_is_required

    error = AttestationError(reason)
    if reason in NOTHING_TO_VERIFY:  # evidence missing: the description says what to send
        descriptions = [_what_is_required(error, "This client requires device attestation: attest with",
                                          enrolling=True),
                        _what_is_required(error, "Fresh device attestation is required on every refresh: use",
                                          enrolling=False)]
        return [{"status": 400, "error": "use_attestation_challenge", "error_description": description,
                 "reason": reason, "challenge_header": True, "action": RETRY_WITH_NEW_CHALLENGE}
                for description in descriptions]
    refused = _refuse(None, error, "refresh", with_challenge=False)  # type: ignore[arg-type]
    assert isinstance(refused, OAuth2Error)
    code = str(refused.error)
    action = ERROR_ACTIONS.get(code) or ATTESTATION_ACTIONS.get(reason, FIX_THE_APP)
    return [{"status": refused.status_code, "error": code, "error_description": refused.description,
             "reason": reason, "challenge_header": True, "action": action}]


def _dpop_refusal(**forge: Any) -> dict[str, Any]:
    """Run the server's proof verification on a broken proof; the body it answers."""
    from joserfc.jwk import ECKey

    from sessions.dpop import DPoPError, verify_proof
    from sessions.dpop.client import create_proof

    now = datetime.now(UTC)
    key = ECKey.generate_key("P-256", private=True)
    proof = create_proof(key, method="POST", url="https://id.example.com/token", now=forge.pop("iat", now))
    try:
        verify_proof(proof, method="POST", url="https://id.example.com/token", now=now, **forge)
        if forge.get("expected_jkt") is None:
            verify_proof(proof, method="POST", url="https://id.example.com/token", now=now)  # a replay
    except DPoPError as exc:
        nonce = exc.error == "use_dpop_nonce"
        action = RETRY_WITH_DPOP_NONCE if nonce else (
            SYNC_CLOCK_AND_RETRY if exc.reason in {"dpop_iat_stale", "dpop_iat_future"} else FIX_THE_APP)
        return {"status": 400, "error": str(exc.error), "error_description": exc.description,
                "nonce_header": nonce, "action": action}
    raise AssertionError("the proof was accepted")


def _literal(error: str, description: str, action: str, source: str, source_text: str = "") -> dict[str, Any]:
    return {"status": 400, "error": error, "error_description": description, "action": action,
            "source": source, "source_text": source_text or description}


def refusals() -> list[dict[str, Any]]:
    """Every kind of refusal the token endpoint answers an app, as the server words it, and
    what the app does next."""
    from datetime import timedelta

    from attestation.errors import Reason
    from core.outage import json_answer
    from risk.errors import REVOKED_DESCRIPTION, STEP_UP_DESCRIPTION

    rows = [row for reason in Reason for row in _attestation_refusals(reason.value)]
    # Worded inline by the server: ``source`` names the file and ``source_text`` the words it holds.
    for reason in ("device_mismatch", "device_revoked", "signature_invalid"):
        rows.append(_literal("invalid_grant", f"Device attestation failed ({reason}); the session is revoked.",
                             SIGN_IN_AGAIN, "idp/oauth/attestation_binding.py", "); the session is revoked."))
    rows.append(_literal("invalid_grant", "The refresh token is no longer valid.", SIGN_IN_AGAIN,
                         "idp/oauth/grants/refresh_token.py"))
    rows.append(_literal("invalid_grant", STEP_UP_DESCRIPTION, SIGN_IN_AGAIN, "idp/oauth/grants/refresh_token.py"))
    rows.append(_literal("invalid_grant", REVOKED_DESCRIPTION, SIGN_IN_AGAIN, "risk/errors.py"))
    for description in ("The device must attest again: send the user through authorization.",
                        "This session is not bound to an attested device: authorize again."):
        rows.append(_literal("invalid_grant", description, SIGN_IN_AGAIN, "idp/oauth/attestation_binding.py"))
    rows.append(_literal("invalid_grant", "The authorization code has already been used.", SIGN_IN_AGAIN,
                         "idp/oauth/grants/authorization_code.py"))
    rows.append(_literal("invalid_grant", "The authorization code has already been used and its answer cannot be given "
                         "again (the device's attestation was single-use): sign in again.", SIGN_IN_AGAIN,
                         "idp/oauth/grants/authorization_code.py",
                         "The authorization code has already been used and its answer cannot be given "))
    rows.append(_literal(
        "invalid_grant",
        "The device does not meet this client's device health policy (rule rooted-boot: verified boot state is "
        "Unverified.)",
        SHOW_MESSAGE, "device_health/policy.py", "The device does not meet this client's device health policy ("))
    rows.append(_literal(
        "invalid_grant",
        "Step-up required by the device health policy: send the user through authorization again (rule "
        "old-patch: security patch 2024-01 is older than 12 months.)",
        SIGN_IN_AGAIN, "device_health/policy.py",
        "Step-up required by the device health policy: send the user through authorization again "))
    rows.append(_dpop_refusal(nonce_required=True))
    rows.append(_dpop_refusal(iat=datetime.now(UTC) - timedelta(hours=1)))
    rows.append(_dpop_refusal(iat=datetime.now(UTC) + timedelta(hours=1)))
    rows.append(_dpop_refusal(expected_jkt="another-key"))
    rows.append(_dpop_refusal())
    outage = json_answer()
    rows.append({"status": outage.status_code, **json.loads(outage.content), "retry_after": True,
                 "action": RETRY_AFTER_DELAY})
    for error in ("invalid_request", "invalid_client", "unauthorized_client", "invalid_scope"):
        rows.append({"status": 401 if error == "invalid_client" else 400, "error": error,
                     "error_description": "", "action": FIX_THE_APP})
    # A rate limit at the token endpoint (the unattested fallback's refresh limit): wait Retry-After.
    rows.append({"status": 429, "error": "slow_down", "error_description": "", "retry_after": True,
                 "action": RETRY_AFTER_DELAY})
    return rows


def expected(vectors: dict[str, Any]) -> dict[str, Any]:
    """``vectors`` with every output recomputed from its inputs by the server's code."""
    out = json.loads(json.dumps(vectors))
    keys = out["keys"]
    for case in out["binding"]:
        case["output"] = binding_output(case["input"])
    for case in out["thumbprint"]:
        case["output"] = thumbprint_output(case["input"])
    for case in out["dpop_proof"]:
        case["output"] = proof_output(case["input"], keys["dpop"])
    for case in out["der_to_jose"]:
        case["output"] = der_to_jose_output(case["input"]["der_hex"])
    out["android_key_id"]["output"] = android_key_id_output(keys["android"])
    out["refusals"] = refusals()
    return out


# ----------------------------------------------------------------------------- writing
def _challenge(client_id: str, purpose: str, now: datetime) -> str:
    from attestation.flows.challenges import issue_challenge

    return issue_challenge(SimpleNamespace(client_id=client_id), purpose, now=now).value  # type: ignore[arg-type]


def _inputs() -> dict[str, Any]:
    from django.test import override_settings

    from sessions.dpop import issue_nonce

    now = datetime.fromtimestamp(VECTOR_IAT, tz=UTC)
    dpop = key_jwk(_key_whose_x_starts_with_zero("vigil-guide-dpop"))
    android = key_jwk(_key_whose_x_starts_with_zero("vigil-guide-android"))
    jkt = thumbprint(public_jwk(dpop))
    with override_settings(SECRET_KEY=VECTOR_SECRET):
        enroll, refresh = _challenge("mobile-app", "enroll", now), _challenge("mobile-app", "refresh", now)
        nonce = issue_nonce(now)
    short_r = encode_dss_signature(0x7F << 240 | 0x1234, (1 << 255) | 0xABCDEF)
    return {
        "about": (
            "Fixed inputs and expected outputs for docs/mobile/ios.md and docs/mobile/android.md. "
            "tests/test_mobile_guides.py recomputes every output with the server's code "
            "(tests/mobile_vectors.py), checks that the guides show them, and runs the guides' "
            "Kotlin on the inputs. Test keys and test secret only: never use them in an app."
        ),
        "secret_key": VECTOR_SECRET,
        "keys": {"dpop": dpop, "android": android},
        "binding": [
            {"name": "enroll", "input": {"challenge": enroll, "client_id": "mobile-app",
                                         "grant": "authorization_code", "grant_secret": "SplxlOBeZQQYbYS6WxSbIA",
                                         "dpop_jkt": jkt, "signals": {}}},
            {"name": "refresh", "input": {"challenge": refresh, "client_id": "mobile-app",
                                          "grant": "refresh_token", "grant_secret": "tGzv3JOkF0XG5Qx2TlKWIA",
                                          "dpop_jkt": jkt,
                                          "signals": {"screen_captured": False, "os_version": "18.1",
                                                      "debugger_attached": False}}},
            {"name": "escaping", "input": {"challenge": refresh, "client_id": "app/ü",
                                           "grant": "refresh_token", "grant_secret": "tGzv3JOkF0XG5Qx2TlKWIA",
                                           "dpop_jkt": "",
                                           "signals": {"os_version": "18.1 \"β\" \\ / \u2318 \U0001F600\n\t\u007f"}}},
        ],
        "thumbprint": [
            {"name": "rfc9449-section-6.1-example",
             "input": {"kty": "EC", "crv": "P-256", "x": "l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs",
                       "y": "9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA"}},
            {"name": "dpop-key", "input": public_jwk(dpop)},
        ],
        "dpop_proof": [
            {"name": "token-endpoint", "input": {"method": "POST", "url": "https://id.example.com/token",
                                                 "iat": VECTOR_IAT, "jti": "b3MtZ3VpZGUtdG9rZW4", "nonce": nonce}},
            {"name": "userinfo", "input": {"method": "GET", "url": "https://id.example.com/userinfo?lang=en#top",
                                           "iat": VECTOR_IAT, "jti": "b3MtZ3VpZGUtdXNlcmluZm8",
                                           "access_token": "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"}},
        ],
        "der_to_jose": [{"name": "short-r-long-s", "input": {"der_hex": short_r.hex()}}],
        "android_key_id": {"input": {"key": "android"}},
    }


def write(*, fresh: bool = False) -> None:
    """Recompute the outputs of the stored inputs (or, ``fresh``, of new challenges and nonce)."""
    VECTORS.parent.mkdir(parents=True, exist_ok=True)
    current = _inputs() if fresh or not VECTORS.exists() else load()
    VECTORS.write_text(json.dumps(expected(current), indent=2, ensure_ascii=False) + "\n")
