"""Fixtures of the sessions app. DPoP: real keys (P-256, RSA-2048, Ed25519) and a proof factory."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from joserfc.jwk import ECKey, OKPKey, RSAKey

from sessions.dpop.client import create_proof

DPOP_NOW = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)
TOKEN_URL = "https://vigil.example/oauth/token"


@pytest.fixture(scope="session")
def ec_key() -> ECKey:
    return ECKey.generate_key("P-256")


@pytest.fixture(scope="session")
def rsa_key() -> RSAKey:
    return RSAKey.generate_key(2048)


@pytest.fixture(scope="session")
def ed_key() -> OKPKey:
    return OKPKey.generate_key("Ed25519")


@pytest.fixture
def make_proof(ec_key: ECKey) -> Callable[..., str]:
    """``make_proof(key=None, method="POST", url=TOKEN_URL, now=DPOP_NOW, **create_proof_kwargs)``."""

    def factory(key: Any = None, *, method: str = "POST", url: str = TOKEN_URL, **kwargs: Any) -> str:
        kwargs.setdefault("now", DPOP_NOW)
        return create_proof(key or ec_key, method=method, url=url, **kwargs)

    return factory

# The provider's fixtures (users, clients, a logged-in browser, PKCE) for token-endpoint tests.
from idp.tests.conftest import browser, mobile_client, pkce, service_client, tokens, user  # noqa: E402,F401
