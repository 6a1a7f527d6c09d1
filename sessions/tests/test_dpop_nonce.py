"""RFC 9449 §8/§9 server nonces: stateless, HMAC-signed, valid for the current and previous window."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import time_machine

from sessions.dpop import DPoPError, Reason, is_valid_nonce, issue_nonce, verify_proof
from idp.encoding import b64url_decode, b64url_encode as b64url

from .conftest import DPOP_NOW, TOKEN_URL

WINDOW = timedelta(seconds=300)


def window_start() -> Any:
    epoch = int(DPOP_NOW.timestamp())
    return DPOP_NOW - timedelta(seconds=epoch % 300)


def test_nonce_is_unpredictable_and_header_safe() -> None:
    nonces = {issue_nonce(DPOP_NOW) for _ in range(50)}
    assert len(nonces) == 50
    assert all(len(n) == 48 and b64url(b64url_decode(n)) == n for n in nonces)


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


@pytest.mark.parametrize("mutate", ["flip_tag", "flip_window", "truncate", "append"])
def test_forged_nonce(mutate: str) -> None:
    raw = bytearray(b64url_decode(issue_nonce(DPOP_NOW)))
    if mutate == "flip_tag":
        raw[-1] ^= 1
    elif mutate == "flip_window":
        raw[7] ^= 1
    elif mutate == "truncate":
        raw = raw[:-3]
    else:
        raw += b"\x00\x00\x00"
    assert not is_valid_nonce(b64url(bytes(raw)), DPOP_NOW)


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
    raw = bytearray(b64url_decode(issue_nonce(DPOP_NOW)))
    raw[-1] ^= 0xFF
    assert_use_nonce(make_proof(nonce=b64url(bytes(raw))), Reason.NONCE_INVALID, nonce_required=True)


def test_present_but_invalid_nonce_is_refused_even_when_not_required(make_proof: Callable[..., str]) -> None:
    assert_use_nonce(make_proof(nonce="made-up"), Reason.NONCE_INVALID)


def test_nonce_refusal_does_not_burn_the_jti(make_proof: Callable[..., str]) -> None:
    assert_use_nonce(make_proof(jti="retry"), Reason.NONCE_MISSING, nonce_required=True)
    verify(make_proof(jti="retry", nonce=issue_nonce(DPOP_NOW)), nonce_required=True)
