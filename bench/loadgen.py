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
``seed_vigil.py --attested/--attested-android``: see
``loadgen_devices.attested_refresh_action``.
"""

# This module runs the scenarios of a spec; beside it, loadgen_devices.py (what each simulated device
# sends, per scenario kind), loadgen_http.py (one request on a bare socket, the reply read whole) and
# loadgen_stats.py (/proc readings and a scenario's result from what its threads recorded).

from __future__ import annotations

import argparse
import json
import os
import random
import threading
import time
import zlib
from typing import Any

from loadgen_devices import State, make_action
from loadgen_stats import Record, Window, sample_cpu, summarize


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
    window = Window(records, t0, m0, m1, real0, real1, cpu0, cpu1, issued[0], errors_sample, exhausted.is_set())
    return summarize(scenario, state.spec["system"], master, window)


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
