"""RFC 9449 §8/§9 server nonces: stateless, signed (django.core.signing, own salt), valid for the
current and previous window; values of the old format or another purpose are refused."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from core.encoding import b64url_decode
from core.encoding import b64url_encode as b64url
from core.signed_values import Purpose, dump
from sessions.dpop import DPoPError, Reason, is_valid_nonce, issue_nonce, verify_proof

from .conftest import DPOP_NOW, TOKEN_URL

WINDOW = timedelta(seconds=300)


def window_start() -> Any:
    epoch = int(DPOP_NOW.timestamp())
    return DPOP_NOW - timedelta(seconds=epoch % 300)


def window_index(moment: Any) -> int:
    return int(moment.timestamp()) // 300


def old_format_nonce(secret_key: str, moment: Any) -> str:
    """A nonce as the previous home-made format minted it (48 base64url characters: window,
    random bytes, truncated HMAC under an HKDF key from SECRET_KEY), otherwise still valid."""
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"vigil", info=b"sessions.dpop.nonce").derive(secret_key.encode())
    body = window_index(moment).to_bytes(8, "big") + secrets.token_bytes(12)
    return b64url(body + hmac.new(key, b"dpop-nonce:" + body, hashlib.sha256).digest()[:16])


def test_nonce_is_unpredictable_and_header_safe() -> None:
    nonces = {issue_nonce(DPOP_NOW) for _ in range(50)}
    assert len(nonces) == 50
    assert all(len(n) == 71 and re.fullmatch(r"[A-Za-z0-9_-]{27}\.[A-Za-z0-9_-]{43}", n) for n in nonces)


def test_nonce_valid_in_its_window_and_the_next() -> None:
    nonce = issue_nonce(window_start())
    assert is_valid_nonce(nonce, window_start())
    assert is_valid_nonce(nonce, window_start() + WINDOW + WINDOW - timedelta(seconds=1))


def test_expired_nonce() -> None:
    nonce = issue_nonce(window_start())
    assert not is_valid_nonce(nonce, window_start() + 2 * WINDOW)


def test_nonce_from_the_future_is_invalid() -> None:
    assert not is_valid_nonce(issue_nonce(DPOP_NOW + WINDOW), DPOP_NOW)


def test_any_process_accepts_a_nonce_no_state_needed() -> None:
    """Nothing is stored: validation only needs SECRET_KEY (the cache is cleared between)."""
    from django.core.cache import cache

    nonce = issue_nonce(DPOP_NOW)
    cache.clear()
    assert is_valid_nonce(nonce, DPOP_NOW)


def _tampered(nonce: str, mutate: str) -> str:
    body_text, tag_text = nonce.split(".")
    body, tag = bytearray(b64url_decode(body_text)), bytearray(b64url_decode(tag_text))
    if mutate == "flip_tag":
        tag[-1] ^= 1
    elif mutate == "flip_window":
        body[7] ^= 1
    elif mutate == "truncate":
        body = body[:-3]
    else:
        body += b"\x00\x00\x00"
    return f"{b64url(bytes(body))}.{b64url(bytes(tag))}"


@pytest.mark.parametrize("mutate", ["flip_tag", "flip_window", "truncate", "append"])
def test_forged_nonce(mutate: str) -> None:
    assert not is_valid_nonce(_tampered(issue_nonce(DPOP_NOW), mutate), DPOP_NOW)


def test_nonce_payload_of_the_wrong_length_is_invalid_even_signed() -> None:
    assert not is_valid_nonce(dump(Purpose.DPOP_NONCE, window_index(DPOP_NOW).to_bytes(8, "big")), DPOP_NOW)


def test_attestation_challenge_is_not_a_nonce() -> None:
    """Same key, another salt: a value signed for challenges never verifies as a nonce, even
    with a payload of a nonce's shape."""
    payload = window_index(DPOP_NOW).to_bytes(8, "big") + secrets.token_bytes(12)
    assert not is_valid_nonce(dump(Purpose.ATTESTATION_CHALLENGE, payload), DPOP_NOW)
    assert is_valid_nonce(dump(Purpose.DPOP_NONCE, payload), DPOP_NOW)


def test_old_format_nonce_is_invalid(settings: Any) -> None:
    assert not is_valid_nonce(old_format_nonce(settings.SECRET_KEY, DPOP_NOW), DPOP_NOW)


@pytest.mark.parametrize("value", ["", "x", "=" * 48, "A" * 48, "é" * 48, None, 42, b"bytes"])
def test_garbage_nonce(value: Any) -> None:
    assert not is_valid_nonce(value, DPOP_NOW)


def test_nonce_signed_with_another_secret_key_is_invalid(settings: Any) -> None:
    settings.SECRET_KEY = "another-deployment-secret-key-0123456789abcdefghijklmnop"
    foreign = issue_nonce(DPOP_NOW)
    settings.SECRET_KEY = "our-secret-key-0123456789abcdefghijklmnopqrstuvwxyz-0123"
    assert not is_valid_nonce(foreign, DPOP_NOW)


def test_nonce_survives_secret_key_rotation(settings: Any) -> None:
    settings.SECRET_KEY = "old-secret-key-0123456789abcdefghijklmnopqrstuvwxyz-0123"
    nonce = issue_nonce(DPOP_NOW)
    settings.SECRET_KEY = "new-secret-key-0123456789abcdefghijklmnopqrstuvwxyz-0123"
    settings.SECRET_KEY_FALLBACKS = ["old-secret-key-0123456789abcdefghijklmnopqrstuvwxyz-0123"]
    assert is_valid_nonce(nonce, DPOP_NOW)


def test_window_length_follows_settings(settings: Any) -> None:
    settings.SESSIONS_DPOP_NONCE_WINDOW = "60"
    nonce = issue_nonce(window_start())
    assert is_valid_nonce(nonce, window_start() + timedelta(seconds=119))
    assert not is_valid_nonce(nonce, window_start() + timedelta(seconds=120))


def test_default_clock() -> None:
    with time_machine.travel(DPOP_NOW, tick=False):
        nonce = issue_nonce()
        assert is_valid_nonce(nonce)
    with time_machine.travel(DPOP_NOW + 3 * WINDOW, tick=False):
        assert not is_valid_nonce(nonce)


# ----------------------------------------------------------------------------- in verify_proof
def verify(proof: str, **kwargs: Any) -> Any:
    return verify_proof(proof, method="POST", url=TOKEN_URL, now=DPOP_NOW, **kwargs)


def assert_use_nonce(proof: str, reason: str, **kwargs: Any) -> None:
    with pytest.raises(DPoPError) as info:
        verify(proof, **kwargs)
    error = info.value
    assert (error.error, error.reason) == ("use_dpop_nonce", reason)
    assert is_valid_nonce(error.nonce, DPOP_NOW)
    assert error.nonce_headers() == {"DPoP-Nonce": error.nonce}


def test_required_nonce_missing(make_proof: Callable[..., str]) -> None:
    assert_use_nonce(make_proof(), Reason.NONCE_MISSING, nonce_required=True)


def test_required_nonce_present(make_proof: Callable[..., str]) -> None:
    nonce = issue_nonce(DPOP_NOW)
    assert verify(make_proof(nonce=nonce), nonce_required=True).nonce == nonce


def test_expired_nonce_in_proof(make_proof: Callable[..., str]) -> None:
    stale = issue_nonce(DPOP_NOW - 2 * WINDOW)
    assert_use_nonce(make_proof(nonce=stale), Reason.NONCE_INVALID, nonce_required=True)


def test_forged_nonce_in_proof(make_proof: Callable[..., str]) -> None:
    forged = _tampered(issue_nonce(DPOP_NOW), "flip_tag")
    assert_use_nonce(make_proof(nonce=forged), Reason.NONCE_INVALID, nonce_required=True)


def test_old_format_nonce_in_proof_gets_the_stale_nonce_answer(make_proof: Callable[..., str], settings: Any) -> None:
    """A client holding a nonce from before the format change retries like after a stale one."""
    old = old_format_nonce(settings.SECRET_KEY, DPOP_NOW)
    assert_use_nonce(make_proof(nonce=old), Reason.NONCE_INVALID, nonce_required=True)


def test_present_but_invalid_nonce_is_refused_even_when_not_required(make_proof: Callable[..., str]) -> None:
    assert_use_nonce(make_proof(nonce="made-up"), Reason.NONCE_INVALID)


def test_nonce_refusal_does_not_burn_the_jti(make_proof: Callable[..., str]) -> None:
    assert_use_nonce(make_proof(jti="retry"), Reason.NONCE_MISSING, nonce_required=True)
    verify(make_proof(jti="retry", nonce=issue_nonce(DPOP_NOW)), nonce_required=True)
