"""Rendering DPoP errors (RFC 9449 §7.1, §8, §12.2), the one-header rule (§4.3 check 1), settings."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import RequestFactory

from sessions.app_settings import app_settings
from sessions.dpop import (
    DPoPError,
    ErrorCode,
    Reason,
    dpop_header_values,
    single_proof_from_headers,
    www_authenticate,
)


def test_error_body_is_rfc6749_json() -> None:
    error = DPoPError.invalid(Reason.REPLAY, "The DPoP proof has been used before.")
    assert error.as_dict() == {"error": "invalid_dpop_proof", "error_description": "The DPoP proof has been used before."}
    assert error.reason == "dpop_replay"
    assert error.nonce_headers() == {}


def test_plain_constructor_matches_the_brief() -> None:
    error = DPoPError(ErrorCode.USE_DPOP_NONCE, "Nonce required.", "n0nce")
    assert (error.error, error.description, error.nonce, error.reason) == ("use_dpop_nonce", "Nonce required.", "n0nce", "use_dpop_nonce")


def test_www_authenticate_for_a_bad_proof() -> None:
    error = DPoPError.invalid(Reason.BAD_SIGNATURE, "The DPoP proof signature is invalid.")
    assert error.www_authenticate() == (
        'DPoP error="invalid_dpop_proof", error_description="The DPoP proof signature is invalid.", '
        'algs="ES256 RS256 PS256 EdDSA"'
    )


def test_www_authenticate_without_error_lists_algs() -> None:
    assert www_authenticate(realm="vigil", algs=["ES256"]) == 'DPoP realm="vigil", algs="ES256"'


def test_www_authenticate_for_use_dpop_nonce_at_a_resource_server() -> None:
    error = DPoPError.use_nonce(Reason.NONCE_MISSING, "Resource server requires nonce in DPoP proof", "abc")
    assert error.www_authenticate(algs=["ES256"]) == (
        'DPoP error="use_dpop_nonce", error_description="Resource server requires nonce in DPoP proof", algs="ES256"'
    )
    assert error.nonce_headers() == {"DPoP-Nonce": "abc"}


def test_header_values_are_quoted_safely() -> None:
    value = www_authenticate("invalid_token", 'bad "quote" \\ and\r\nnewline', algs=[])
    assert value == 'DPoP error="invalid_token", error_description="bad \\"quote\\" \\\\ andnewline", algs=""'


@pytest.mark.parametrize("values, expected", [(None, None), ([], None), (["a.b.c"], "a.b.c"), ([" a.b.c "], "a.b.c")])
def test_single_proof(values: Any, expected: Any) -> None:
    assert single_proof_from_headers(values) == expected


@pytest.mark.parametrize("values", [["a.b.c", "d.e.f"], ["a.b.c, d.e.f"], ["a.b.c", ""]])
def test_two_dpop_headers(values: list[str]) -> None:
    with pytest.raises(DPoPError) as info:
        single_proof_from_headers(values)
    assert (info.value.error, info.value.reason) == ("invalid_dpop_proof", Reason.MULTIPLE_HEADERS)


def test_header_values_from_a_django_request() -> None:
    factory = RequestFactory()
    assert dpop_header_values(factory.post("/token")) == []
    assert dpop_header_values(factory.post("/token", headers={"DPoP": "a.b.c"})) == ["a.b.c"]


def test_settings_defaults() -> None:
    assert app_settings.DPOP_ALGS == ["ES256", "RS256", "PS256", "EdDSA"]
    assert (app_settings.DPOP_MAX_AGE, app_settings.DPOP_CLOCK_SKEW, app_settings.DPOP_NONCE_WINDOW) == (300, 30, 300)
    assert app_settings.DPOP_NONCE_REQUIRED is False
    assert app_settings.DPOP_REPLAY_CACHE == "default"


def test_settings_from_environment_strings(settings: Any) -> None:
    settings.SESSIONS_DPOP_ALGS = "EdDSA,ES256 none HS256"
    settings.SESSIONS_DPOP_MAX_AGE = "120"
    settings.SESSIONS_DPOP_NONCE_REQUIRED = "true"
    assert app_settings.DPOP_ALGS == ["EdDSA", "ES256"]
    assert app_settings.DPOP_MAX_AGE == 120
    assert app_settings.DPOP_NONCE_REQUIRED is True
