"""Password logins per second: the hasher Vigil ships against Django's default Argon2.

Measures hash verification only (the cost that bounds a login endpoint on CPU), first on
one core, then with one process per core in parallel. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import time

from django.conf import settings

settings.configure(
    PASSWORD_HASHERS=[
        "accounts.hashers.VigilArgon2PasswordHasher",
        "django.contrib.auth.hashers.Argon2PasswordHasher",
    ],
    USE_TZ=True,
)

from django.contrib.auth.hashers import Argon2PasswordHasher  # noqa: E402

from accounts.hashers import VigilArgon2PasswordHasher  # noqa: E402

PASSWORD = "correct horse battery staple"
KEYCLOAK_LOGINS_PER_VCPU = 15  # Keycloak's published sizing guidance, argon2 hashing


def _verify_for(args: tuple[str, float]) -> float:
    """Verifications per second in this process over about ``seconds`` (at least 3 hashes)."""
    name, seconds = args
    hasher = VigilArgon2PasswordHasher() if name == "vigil" else Argon2PasswordHasher()
    encoded = hasher.encode(PASSWORD, hasher.salt())
    done = 0
    start = time.perf_counter()
    deadline = start + seconds
    while (time.perf_counter() < deadline or done < 3) and done < 100_000:
        if not hasher.verify(PASSWORD, encoded):
            raise SystemExit("verification failed")
        done += 1
    return done / (time.perf_counter() - start)


def measure(name: str, seconds: float) -> dict[str, object]:
    hasher = VigilArgon2PasswordHasher() if name == "vigil" else Argon2PasswordHasher()
    per_core = _verify_for((name, seconds))
    cores = os.cpu_count() or 1
    with multiprocessing.get_context("fork").Pool(cores) as pool:
        box = sum(pool.map(_verify_for, [(name, seconds)] * cores))
    label = "VigilArgon2PasswordHasher (shipped)" if name == "vigil" else "Django Argon2PasswordHasher (default)"
    return {
        "name": label,
        "params": f"argon2id m={hasher.memory_cost // 1024} MiB t={hasher.time_cost} p={hasher.parallelism}",
        "ms_per_hash": 1000 / per_core,
        "per_core": per_core,
        "box": box,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    result = {
        "hashers": [measure("vigil", args.seconds), measure("django", args.seconds)],
        "keycloak_per_vcpu": KEYCLOAK_LOGINS_PER_VCPU,
        "cores": os.cpu_count(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
