"""The load generator: simulated mobile devices against one server on 127.0.0.1.

A separate process from the server, standard library only. It reads a JSON spec (target
port, gunicorn master pid, client ids, scenarios) and writes one JSON result per scenario.
Every loop is bounded twice: by the scenario's duration and by ``max_requests``.

Closed loop (``devices`` threads, each waiting for its answer before the next request) is
the default; ``rate`` switches a scenario to an open loop (requests scheduled at a fixed
arrival rate, latency measured from the scheduled time, so queueing is counted).

Refresh: device ``d`` owns the sessions ``i`` with ``i % devices == d`` and picks one at
random each time, presenting its current refresh token and keeping the rotated one
(a session is never used by two devices at once). Code exchange: each request redeems the
next pre-minted code with its PKCE verifier. Introspection presents access tokens the
refresh scenario received. Attested refresh (``attested_refresh`` for iOS,
``attested_refresh_android``) drives the enrolled simulated devices of
``seed_vigil.py --attested/--attested-android``: see ``attested_refresh_action``.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import socket
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any
from urllib.parse import urlencode

from seed_sql import code, refresh_token, verifier

HOST = "127.0.0.1"
BASE_HEADERS = {"Host": "localhost", "X-Forwarded-Proto": "https", "Connection": "close"}
FORM = "application/x-www-form-urlencoded"
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- /proc readings
def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(p) for p in fh.read().split()]
    except OSError:
        return []


def _cpu_seconds(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def _status_kb(pid: int, key: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _backend_pids(pg_url: str | None, database: str | None) -> list[int]:
    """PostgreSQL backends serving the bench database (the gunicorn workers' persistent
    connections): other databases on the same server, other people's tests included, are
    not counted."""
    if not pg_url or not database:
        return []
    import psycopg

    with psycopg.connect(f"{pg_url}/postgres", autocommit=True) as conn:
        rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                            [database]).fetchall()
    return [row[0] for row in rows]


@dataclass
class CpuSample:
    server: float
    db: dict[int, float]
    loadgen: float


def sample_cpu(master: int, pg_url: str | None = None, database: str | None = None) -> CpuSample:
    server = _cpu_seconds(master) + sum(_cpu_seconds(p) for p in _children(master))
    db = {pid: _cpu_seconds(pid) for pid in _backend_pids(pg_url, database)}
    times = os.times()
    return CpuSample(server, db, times.user + times.system)


def db_delta(before: CpuSample, after: CpuSample) -> float:
    """CPU of the bench database's backends between two samples; a backend born in between
    counts from zero."""
    return sum(max(0.0, cpu - before.db.get(pid, 0.0)) for pid, cpu in after.db.items())


def worker_rss_mb(master: int) -> tuple[float, float]:
    """(peak, current) resident set of the largest worker, in MB."""
    workers = _children(master)
    peak = max((_status_kb(p, "VmHWM") for p in workers), default=0) / 1024
    now = max((_status_kb(p, "VmRSS") for p in workers), default=0) / 1024
    return peak, now


# --------------------------------------------------------------------------- HTTP
@dataclass
class Reply:
    status: int
    body: bytes
    queries: int | None
    challenge: str | None = None
    dpop_nonce: str | None = None


def request(port: int, method: str, path: str, form: dict[str, str] | None = None,
            headers: dict[str, str] | None = None) -> Reply:
    """One HTTP/1.1 request on a connection of its own (``Connection: close``, as a device's
    first request on a new connection), read to the server's close.

    Written on a bare socket, not ``http.client``: the load generator shares the two cores with
    the server it measures, and ``http.client`` (its header parsing through ``email``) cost
    about 0.1 ms more CPU per request, on every scenario of both systems alike (docs/benchmarks.md)."""
    body = urlencode(form).encode() if form is not None else b""
    lines = [f"{method} {path} HTTP/1.1"]
    lines += [f"{name}: {value}" for name, value in {**BASE_HEADERS, **(headers or {})}.items()]
    if form is not None:
        lines += [f"Content-Type: {FORM}", f"Content-Length: {len(body)}"]
    with socket.create_connection((HOST, port), timeout=30) as conn:
        conn.sendall("\r\n".join(lines).encode("latin-1") + b"\r\n\r\n" + body)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return parse_reply(b"".join(chunks))


def parse_reply(raw: bytes) -> Reply:
    """Status, headers and body of one HTTP/1.1 response (``Content-Length``, chunked, or to the
    close); a response cut short raises ``ValueError``, counted as an error."""
    head, sep, rest = raw.partition(b"\r\n\r\n")
    if not sep:
        raise ValueError(f"no complete response ({len(raw)} bytes)")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    status = int(status_line.split(" ", 2)[1])
    found: dict[str, str] = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        found[name.strip().lower()] = value.strip()
    if found.get("transfer-encoding", "").lower() == "chunked":
        rest = _dechunk(rest)
    elif "content-length" in found:
        if len(rest) < int(found["content-length"]):
            raise ValueError("response body cut short")
        rest = rest[: int(found["content-length"])]
    queries = found.get("x-bench-queries")
    return Reply(status, rest, int(queries) if queries is not None else None,
                 found.get("oauth-client-attestation-challenge"), found.get("dpop-nonce"))


def _dechunk(data: bytes) -> bytes:
    out: list[bytes] = []
    position = 0
    while True:
        end = data.index(b"\r\n", position)
        size = int(data[position:end].split(b";")[0], 16)
        if size == 0:
            return b"".join(out)
        out.append(data[end + 2:end + 2 + size])
        position = end + 2 + size + 2


# --------------------------------------------------------------------------- state shared across scenarios
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


# --------------------------------------------------------------------------- running one scenario
@dataclass
class Record:
    start: float
    end: float
    ok: bool
    status: int
    queries: int | None


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    k = min(len(sorted_values) - 1, max(0, int(round(q / 100 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[k]


def run_scenario(state: State, scenario: dict[str, Any]) -> dict[str, Any]:
    master = state.spec["master_pid"]
    rate = scenario.get("rate")
    devices = scenario["devices"]
    threads_n = max(devices, 1)
    action = make_action(state, scenario, devices)
    warmup, duration = scenario["warmup"], scenario["duration"]
    max_requests = scenario["max_requests"]
    t0 = time.monotonic()
    m0, m1 = t0 + warmup, t0 + warmup + duration
    records: list[list[Record]] = [[] for _ in range(threads_n)]
    issued = [0]
    counter_lock = threading.Lock()
    exhausted = threading.Event()
    errors_sample: list[str] = []

    def next_slot() -> int | None:
        with counter_lock:
            if issued[0] >= max_requests:
                return None
            issued[0] += 1
            return issued[0] - 1

    def worker(index: int) -> None:
        rng = random.Random(zlib.crc32(f"{scenario['name']}/{index}".encode()))
        out = records[index]
        while not exhausted.is_set():
            slot = next_slot()
            if slot is None:
                return
            if rate:
                scheduled = t0 + slot / rate
                if scheduled >= m1 or time.monotonic() >= m1:
                    return
                delay = scheduled - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                start = scheduled
                device = slot % devices
            else:
                start = time.monotonic()
                if start >= m1:
                    return
                device = index
            try:
                result = action(device, rng, slot)
            except (OSError, ValueError, KeyError) as exc:
                out.append(Record(start, time.monotonic(), False, 0, None))
                if len(errors_sample) < 3:
                    errors_sample.append(repr(exc)[:200])
                continue
            if result is None:
                exhausted.set()
                return
            reply, ok = result[0], result[1]
            if len(result) > 2 and result[2] is not None:
                start = result[2]  # a preparatory request (a challenge fetch) is not part of the latency
            out.append(Record(start, time.monotonic(), ok, reply.status, reply.queries))
            if not ok and len(errors_sample) < 3:
                errors_sample.append(f"{reply.status} {reply.body[:200]!r}")

    pool = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(threads_n)]
    for thread in pool:
        thread.start()
    time.sleep(max(0.0, m0 - time.monotonic()))
    pg_url, database = state.spec.get("pg_url"), state.spec.get("database")
    cpu0 = sample_cpu(master, pg_url, database)
    real0 = time.monotonic()
    while time.monotonic() < m1 and not exhausted.is_set() and any(t.is_alive() for t in pool):
        time.sleep(0.05)
    cpu1 = sample_cpu(master, pg_url, database)
    real1 = time.monotonic()
    for thread in pool:
        thread.join(timeout=35)
    window_end = min(m1, real1)
    if rate:
        # Open loop: what completed inside the window, latency from its scheduled time (a
        # server that falls behind shows it as queueing, not as fewer requests sent).
        measured = [r for rs in records for r in rs if m0 <= r.end <= window_end]
    else:
        measured = [r for rs in records for r in rs if r.start >= m0 and r.end <= window_end]
    behind = max(0, int((window_end - t0) * rate) - issued[0]) if rate else 0
    elapsed = max(1e-9, window_end - m0)
    ok = [r for r in measured if r.ok]
    latencies = sorted((r.end - r.start) * 1000 for r in ok)
    # An answer without the count was served before Django's handler (vigil.documents_fast_path,
    # which never replays it): no statement can run there.
    queries = [r.queries or 0 for r in ok]
    before_django = sum(1 for r in ok if r.queries is None)
    statuses: dict[str, int] = {}
    for r in measured:
        if not r.ok:
            statuses[str(r.status)] = statuses.get(str(r.status), 0) + 1
    n = len(measured)
    peak_rss, rss = worker_rss_mb(master)
    per_k = 1000 / n if n else 0.0
    return {
        "name": scenario["name"],
        "kind": scenario["kind"],
        "system": state.spec["system"],
        "devices": devices,
        "rate": rate,
        "duration_s": round(elapsed, 3),
        "requests": n,
        "ok": len(ok),
        "errors": n - len(ok),
        "error_statuses": statuses,
        "error_samples": errors_sample,
        "throughput_rps": round(len(ok) / elapsed, 1),
        "latency_ms": {
            "p50": round(percentile(latencies, 50), 2),
            "p95": round(percentile(latencies, 95), 2),
            "p99": round(percentile(latencies, 99), 2),
            "max": round(latencies[-1], 2) if latencies else 0.0,
        },
        "server_cpu_s_per_1k": round((cpu1.server - cpu0.server) * per_k, 3),
        "db_cpu_s_per_1k": round(db_delta(cpu0, cpu1) * per_k, 3),
        "loadgen_cpu_s_per_1k": round((cpu1.loadgen - cpu0.loadgen) * per_k, 3),
        "cpu_window_s": round(real1 - real0, 3),
        "peak_worker_rss_mb": round(peak_rss, 1),
        "worker_rss_mb": round(rss, 1),
        "sql_per_request": round(sum(queries) / len(queries), 2) if queries else None,
        "sql_per_request_max": max(queries) if queries else None,
        "served_before_django": before_django,
        "codes_exhausted": exhausted.is_set(),
        "open_loop_arrivals_not_sent": behind,
        # Raw readings, so bench/run.py can merge rounds of the same scenario.
        "raw": {
            "latencies_ms": [round(v, 3) for v in latencies],
            "server_cpu_s": cpu1.server - cpu0.server,
            "db_cpu_s": db_delta(cpu0, cpu1),
            "loadgen_cpu_s": cpu1.loadgen - cpu0.loadgen,
            "sql_sum": sum(queries),
            "sql_n": len(queries),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("spec")
    parser.add_argument("out")
    args = parser.parse_args()
    with open(args.spec) as fh:
        spec = json.load(fh)
    state = State(spec)
    state_file = spec.get("state_file")
    if state_file and os.path.exists(state_file):
        with open(state_file) as fh:
            saved = json.load(fh)
        state.tokens = {int(k): v for k, v in saved["tokens"].items()}
        state.next_code = saved["next_code"]
        state.access_tokens = saved.get("access_tokens", [])
        state.attested = saved.get("attested", {})
    results: list[dict[str, Any]] = []
    with open(args.out, "w") as fh:
        json.dump(results, fh)
    for scenario in spec["scenarios"]:
        if scenario["kind"] == "introspect" and not state.access_tokens:
            continue
        result = run_scenario(state, scenario)
        results.append(result)
        print(
            f"  {result['name']:<26} {result['throughput_rps']:>8.1f} req/s  p99 {result['latency_ms']['p99']:>7.1f} ms"
            f"  errors {result['errors']}  sql/req {result['sql_per_request']}",
            flush=True,
        )
        if result["error_samples"]:
            print(f"    first error: {result['error_samples'][0]}", flush=True)
        with open(args.out, "w") as fh:
            json.dump(results, fh, indent=1)
    if state_file:
        with open(state_file, "w") as fh:
            json.dump({"tokens": state.tokens, "next_code": state.next_code,
                       "access_tokens": state.access_tokens, "attested": state.attested}, fh)


if __name__ == "__main__":
    main()
