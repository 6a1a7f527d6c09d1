"""Fixtures for the operations tests: the provider's token-flow fixtures, and sample reading."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import REGISTRY

from idp.tests.conftest import browser, mobile_client, pkce, tokens, user  # noqa: F401  (fixtures)


def sample(name: str, **labels: str) -> float:
    """A sample of this process's registry (tests run without multiprocess mode); 0 if absent."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


class Deltas:
    """What the named samples gained since the object was made."""

    def __init__(self, *series: tuple[str, dict[str, str]]):
        self.series = series
        self.before = [sample(name, **labels) for name, labels in series]

    def gained(self) -> list[float]:
        return [sample(name, **labels) - start for (name, labels), start in zip(self.series, self.before, strict=True)]


@pytest.fixture
def issuer(live_server: Any, settings: Any) -> str:
    settings.IDP_ISSUER = live_server.url
    return str(live_server.url)
