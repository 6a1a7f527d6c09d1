"""docs/dpop.md's relying-service example runs, and refuses what it should."""

from __future__ import annotations

import re
import time
import warnings
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from django.core.cache import cache
from joserfc.jwk import ECKey

from sessions.dpop.client import create_proof

DOC = Path(__file__).resolve().parents[2] / "docs" / "dpop.md"
URL = "https://api.example.com/v1/me?fields=email"


@pytest.fixture
def example() -> dict[str, Any]:
    code = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)[0]
    namespace: dict[str, Any] = {"__name__": "dpop_doc_example"}
    exec(compile(code, str(DOC), "exec"), namespace)
    return namespace


def test_doc_example(example: dict[str, Any]) -> None:
    signing = ec.generate_private_key(ec.SECP256R1())

    class StaticJWKS:
        def get_signing_key_from_jwt(self, token: str) -> Any:
            return type("SigningKey", (), {"key": signing.public_key()})

    example["jwks"] = StaticJWKS()
    device, thief = ECKey.generate_key("P-256"), ECKey.generate_key("P-256")
    now = int(time.time())
    claims = {"iss": example["ISSUER"], "aud": example["AUDIENCE"], "sub": "u1", "exp": now + 300, "iat": now, "jti": "a1",
              "cnf": {"jkt": device.thumbprint()}}
    token = jwt.encode(claims, signing, algorithm="ES256", headers={"typ": "at+jwt", "kid": "k1"})
    headers = {"authorization": [f"DPoP {token}"], "dpop": [create_proof(device, method="GET", url=URL, access_token=token)]}
    authenticate, unauthorized = example["authenticate"], example["Unauthorized"]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert authenticate(headers, "GET", URL, cache)["sub"] == "u1"
        refusals = {
            "replay": headers,
            "bearer": {**headers, "authorization": [f"Bearer {token}"]},
            "thief": {**headers, "dpop": [create_proof(thief, method="GET", url=URL, access_token=token)]},
            "method": {**headers, "dpop": [create_proof(device, method="POST", url=URL, access_token=token)]},
            "two": {**headers, "dpop": headers["dpop"] * 2},
        }
        for name, bad in refusals.items():
            with pytest.raises(unauthorized) as info:
                authenticate(bad, "GET", URL, cache)
            assert info.value.challenge().startswith("DPoP error="), name
