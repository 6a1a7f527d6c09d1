"""What a client's token algorithm costs on the code exchange: ES256 vs RS256 (and EdDSA).

A code exchange signs two JWTs with the client's ``signing_alg`` (the RFC 9068 access token
and the ID token, ``idp/jwt_tokens.sign``); a relying party verifies the ID token, a
resource server the access token. This times exactly those joserfc calls on keys generated
the way ``core/keys.py`` does, with claims of the size Vigil issues. No Django, no database::

    .venv/bin/python -m bench.signing_alg [--number 2000] [--repeat 5]

Prints one JSON object: per algorithm, the best-of-``repeat`` mean CPU microseconds to sign
both tokens of one exchange and to verify one token.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import timeit
from typing import Any

from joserfc import jwt
from joserfc.jwk import ECKey, OKPKey, RSAKey

ISSUER = "https://id.example.com"
ALGS = ["ES256", "RS256", "EdDSA"]


def private_key(alg: str) -> Any:
    if alg == "ES256":
        return ECKey.generate_key("P-256", private=True)
    if alg == "RS256":
        return RSAKey.generate_key(2048, private=True)
    return OKPKey.generate_key("Ed25519", private=True)


def claims(now: int = 1_800_000_000) -> tuple[dict[str, Any], dict[str, Any]]:
    access = {"iss": ISSUER, "sub": "5dbebbae-9a27-49bc-a18f-c97db969339f", "aud": ["poBsNxDQQloFFaMGr_SVquwQ"],
              "client_id": "poBsNxDQQloFFaMGr_SVquwQ", "scope": "openid profile email offline_access",
              "iat": now, "exp": now + 300, "jti": "z-YO_xbE2KpROFURjOTfHQ", "sid": "NGdSJ32jWwv5CI9OqD3HBQ",
              "auth_time": now - 5, "acr": "urn:vigil:acr:password"}
    id_token = {"iss": ISSUER, "sub": access["sub"], "aud": access["client_id"], "iat": now, "exp": now + 300,
                "auth_time": now - 5, "nonce": "n-0123456789abcdef", "acr": "urn:vigil:acr:password", "amr": ["pwd"],
                "sid": access["sid"], "at_hash": "x4Qm3WbX1Q8eJ2R1dC4k9A", "azp": access["client_id"]}
    return access, id_token


def measure(alg: str, number: int, repeat: int) -> dict[str, float]:
    key = private_key(alg)
    kid = key.thumbprint()
    access, id_token = claims()

    def sign_exchange() -> None:
        jwt.encode({"alg": alg, "typ": "at+jwt", "kid": kid}, access, key, algorithms=[alg])
        jwt.encode({"alg": alg, "typ": "JWT", "kid": kid}, id_token, key, algorithms=[alg])

    token = jwt.encode({"alg": alg, "typ": "JWT", "kid": kid}, id_token, key, algorithms=[alg])
    public = type(key).import_key(key.as_dict(private=False))

    def verify_one() -> None:
        jwt.decode(token, public, algorithms=[alg])

    # CPU time of this process, not wall time: other work on shared cores does not count.
    best = {name: min(timeit.repeat(fn, number=number, repeat=repeat, timer=time.process_time)) / number * 1e6
            for name, fn in (("sign_exchange_us", sign_exchange), ("verify_id_token_us", verify_one))}
    return {k: round(v, 1) for k, v in best.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    options = parser.parse_args()
    import cryptography

    result = {
        "python": platform.python_version(), "cryptography": cryptography.__version__, "cpus": os.cpu_count(),
        "number": options.number, "repeat": options.repeat,
        "algs": {alg: measure(alg, options.number, options.repeat) for alg in ALGS},
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
