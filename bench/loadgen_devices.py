"""What one simulated device sends (``bench/loadgen.py``), per scenario kind: refresh with
rotation, code exchange, JWKS, introspection, and the attested refresh of the enrolled iOS and
Android devices; and the state the scenarios of one system share across load generator runs.
"""

from __future__ import annotations

import base64
import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

from loadgen_http import Reply, request
from seed_sql import code, refresh_token, verifier


@dataclass
class State:
    spec: dict[str, Any]
    tokens: dict[int, str] = field(default_factory=dict)
    access_tokens: list[str] = field(default_factory=list)
    next_code: int = 1
    attested: dict[str, dict[str, Any]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take_code(self) -> int | None:
        with self.lock:
            if self.next_code > self.spec["codes"]:
                return None
            value = self.next_code
            self.next_code += 1
            return value


Action = Callable[[int, random.Random, int], "tuple[Reply, bool] | None"]


def make_action(state: State, scenario: dict[str, Any], devices: int) -> Action:
    spec = state.spec
    port, kind = spec["port"], scenario["kind"]
    token_path = spec["token_path"]
    sessions = spec["sessions"]

    if kind == "refresh":
        per_device = sessions // devices

        def refresh(device: int, rng: random.Random, slot: int) -> tuple[Reply, bool]:
            if scenario.get("rate"):
                i = slot % sessions + 1  # open loop: round robin, never two requests on one session
            else:
                i = device + 1 + devices * rng.randrange(per_device)
            presented = state.tokens.get(i) or refresh_token(i)
            form = {"grant_type": "refresh_token", "refresh_token": presented, "client_id": spec["client_id"]}
            reply = request(port, "POST", token_path, form)
            ok = reply.status == 200
            if ok:
                payload = json.loads(reply.body)
                state.tokens[i] = payload["refresh_token"]
                state.access_tokens.append(payload["access_token"])  # the freshest 2,000 are kept
                if len(state.access_tokens) > 4000:
                    del state.access_tokens[:2000]
            return reply, ok

        return refresh

    if kind == "code_exchange":

        def exchange(device: int, rng: random.Random, slot: int) -> tuple[Reply, bool] | None:
            n = state.take_code()
            if n is None:
                return None
            form = {
                "grant_type": "authorization_code",
                "code": code(n),
                "redirect_uri": spec["redirect_uri"],
                "client_id": spec["client_id"],
                "code_verifier": verifier(n),
            }
            reply = request(port, "POST", token_path, form)
            return reply, reply.status == 200 and b"refresh_token" in reply.body

        return exchange  # type: ignore[return-value]

    if kind == "jwks":

        def jwks(device: int, rng: random.Random, slot: int) -> tuple[Reply, bool]:
            reply = request(port, "GET", spec["jwks_path"])
            return reply, reply.status == 200 and b'"keys"' in reply.body

        return jwks

    if kind == "introspect":
        basic = base64.b64encode(f"{spec['service_id']}:{spec['service_secret']}".encode()).decode()
        headers = {"Authorization": f"Basic {basic}"}

        def introspect(device: int, rng: random.Random, slot: int) -> tuple[Reply, bool]:
            token = rng.choice(state.access_tokens)
            form = {"token": token, "token_type_hint": "access_token"}
            reply = request(port, "POST", spec["introspect_path"], form, headers)
            return reply, reply.status == 200 and b'"active": true' in reply.body.replace(b'":true', b'": true')

        return introspect

    if kind in ATTESTED_KINDS:
        return attested_refresh_action(state, scenario.get("partitions", devices), ATTESTED_KINDS[kind])

    raise ValueError(f"unknown scenario kind {kind!r}")


ATTESTED_KINDS = {"attested_refresh": "ios", "attested_refresh_android": "android"}
CHALLENGE_MAX_AGE = 240  # seconds; Vigil's challenges live 300
VERDICT_MARGIN = 30  # seconds: a verdict this close to the app's max age is renewed already


def attested_refresh_action(state: State, devices: int, platform: str = "ios") -> Action:
    """Device-bound refresh, as the mobile app does it (docs/attestation.md §3): evidence by
    the device simulator over the binding of this exact refresh (the challenge the previous
    response carried, client, refresh-token hash, DPoP key), a DPoP proof with the key the
    family is bound to, rotation. iOS: an App Attest assertion. Android: a signature by the
    attested key, plus a classic Play Integrity token when the app's policy asks for one
    (``play_integrity_max_age_minutes``: 0 = every refresh, else once the device's last
    verdict is older). A device fetches a challenge from ``/attestation/challenge`` only
    when it holds none (its first refresh, or after 4 minutes idle); that fetch is outside
    the measured latency."""
    import sys
    from datetime import datetime

    spec = state.spec
    sys.path.insert(0, spec["vigil_root"])
    from cryptography.hazmat.primitives.serialization import load_pem_private_key
    from joserfc.jwk import ECKey

    from attestation.binding import RequestBinding, grant_hash
    from sessions.dpop import thumbprint
    from sessions.dpop.client import create_proof
    from simulator.android import AndroidDevice
    from simulator.ios import IOSDevice

    with open(spec["attested_keys"]) as fh:
        keys = [item for item in json.load(fh) if item.get("platform", "ios") == platform]
    port, client_id, token_url = spec["port"], spec["client_id"], spec["issuer"] + spec["token_path"]
    sims: dict[str, Any] = {}
    dpops: dict[str, Any] = {}
    jkts: dict[str, str] = {}
    max_age: dict[str, float] = {}
    for item in keys:
        j = str(item["j"])
        entry = state.attested.setdefault(j, {"token": f"bench-att-{j}", "challenge": "", "challenge_at": 0.0,
                                              "counter": 0, "nonce": None, "dead": False,
                                              "verdict_at": item.get("verdict_at", 0.0)})
        key = load_pem_private_key(item["key_pem"].encode(), None)
        if platform == "android":
            sims[j] = AndroidDevice(package_name=item["package"], key=key)
            max_age[j] = 60.0 * item["integrity_max_age_minutes"]
        else:
            sims[j] = IOSDevice(app_id=item["app_id"], key=key, counter=entry["counter"])
        dpops[j] = ECKey.import_key(item["dpop_jwk"])
        jkts[j] = thumbprint(dpops[j].as_dict(private=False))
    ordered = sorted(sims, key=int)
    owned = [[j for n, j in enumerate(ordered) if n % devices == d] for d in range(devices)]
    busy: set[str] = set()
    busy_lock = threading.Lock()

    def take(device: int, rng: random.Random) -> str | None:
        """A live session of this device not in flight (in the open loop a device index can have
        two requests out): one device never sends two refreshes of one family at once."""
        with busy_lock:
            mine = [j for j in owned[device % len(owned)] if not state.attested[j]["dead"] and j not in busy]
            free = mine or [j for j in sims if not state.attested[j]["dead"] and j not in busy]
            if not free:
                return None
            j = rng.choice(free)
            busy.add(j)
            return j

    def attested(device: int, rng: random.Random, slot: int) -> tuple[Reply, bool, float | None] | None:
        j = take(device, rng)
        if j is None:
            return None
        try:
            return refresh_one(j)
        finally:
            with busy_lock:
                busy.discard(j)

    def evidence(j: str, binding: Any) -> tuple[dict[str, str], bool]:
        """The form parameters, and whether they carry a new Play Integrity verdict."""
        entry, sim = state.attested[j], sims[j]
        if platform == "ios":
            params = sim.assertion_params(binding)
            entry["counter"] = sim.counter
            return params, False
        verdict = not max_age[j] or time.time() - entry["verdict_at"] > max_age[j] - VERDICT_MARGIN
        return sim.refresh_params(binding, integrity="classic" if verdict else None), verdict

    def refresh_one(j: str) -> tuple[Reply, bool, float | None]:
        entry = state.attested[j]
        start: float | None = None
        if not entry["challenge"] or time.time() - entry["challenge_at"] > CHALLENGE_MAX_AGE:
            got = request(port, "POST", "/attestation/challenge", {"client_id": client_id, "purpose": "refresh"})
            if got.status != 200:
                return got, False, None
            entry["challenge"], entry["challenge_at"] = json.loads(got.body)["attestation_challenge"], time.time()
            start = time.monotonic()
        binding = RequestBinding(entry["challenge"], client_id, "refresh_token", grant_hash(entry["token"]),
                                 dpop_jkt=jkts[j])
        params, verdict = evidence(j, binding)
        form = {"grant_type": "refresh_token", "refresh_token": entry["token"], "client_id": client_id, **params}
        proof = create_proof(dpops[j], method="POST", url=token_url, nonce=entry["nonce"],
                             now=datetime.now(UTC))
        sent_at = time.time()
        reply = request(port, "POST", spec["token_path"], form, {"DPoP": proof})
        entry["challenge"], entry["challenge_at"] = (reply.challenge or "", time.time())
        if reply.dpop_nonce:
            entry["nonce"] = reply.dpop_nonce
        ok = reply.status == 200
        if ok:
            entry["token"] = json.loads(reply.body)["refresh_token"]
            if verdict:
                entry["verdict_at"] = sent_at
        elif b"invalid_grant" in reply.body:
            entry["dead"] = True
        return reply, ok, start

    return attested  # type: ignore[return-value]
