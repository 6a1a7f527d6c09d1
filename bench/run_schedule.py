"""The measurements of one run, in order (``bench/run.py``): the A-B-B-A schedule of load
generator windows (``plan``), each window one ``bench/loadgen.py`` process, the rounds of a
scenario merged into one result (``merge``), the scale run, and the password-hashing rate.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from typing import Any

from run_services import BENCH, LOGDIR, ROOT, VIGIL_BIN, base_env, run, stop_server
from run_systems import setup_dot, setup_vigil, start_dot, start_vigil


def run_loadgen(spec: dict[str, Any], label: str) -> list[dict[str, Any]]:
    spec_path, out_path = LOGDIR / f"{label}-spec.json", LOGDIR / f"{label}-results.json"
    spec_path.write_text(json.dumps(spec))
    env = {**base_env(), "PYTHONPATH": str(BENCH)}
    proc = subprocess.run([str(VIGIL_BIN / "python"), str(BENCH / "loadgen.py"), str(spec_path), str(out_path)],
                          env=env, cwd=BENCH, timeout=3600)
    if proc.returncode != 0 or not out_path.exists():
        raise SystemExit(f"load generator failed for {label}")
    return json.loads(out_path.read_text())


def plan(args: argparse.Namespace, attested: bool, android: bool = False) -> list[tuple[str, dict[str, Any]]]:
    """(system, scenario) steps. Vigil and DOT alternate per scenario, in ABBA order over the
    rounds, so drift in the machine's other load falls on both alike. Vigil's attested (iOS,
    then Android) and plain refresh all sit beside DOT's refresh."""
    common = {"warmup": args.warmup, "duration": args.duration, "max_requests": args.max_requests}
    steps: list[tuple[str, dict[str, Any]]] = []
    refresh = ["attested_refresh"] if attested else []
    refresh += ["attested_refresh_android"] if android else []
    groups = {"refresh": [*refresh, "refresh"], "code_exchange": ["code_exchange"]}
    for group, mine in groups.items():
        for devices in args.devices:
            for r in range(args.rounds):
                window = [("vigil", kind) for kind in mine] + [("dot", f"dot_{group}")]
                for system, name in (window if r % 2 == 0 else window[::-1]):
                    kind = name.removeprefix("dot_")
                    steps.append((system, {"name": f"{name}@{devices}", "kind": kind, "devices": devices,
                                           **common}))
        if group == "refresh":
            # Introspection right after refreshes: it presents access tokens they received (5-minute life).
            for rate in args.rate:
                kind = mine[0]  # attested_refresh (iOS) when it runs
                steps.append(("vigil", {"name": f"{kind}@{rate}/s-open", "kind": kind, "devices": 64,
                                        "partitions": max(args.devices), "rate": rate, **common}))
            short = {**common, "duration": max(5, args.duration // 2)}
            steps.append(("vigil", {"name": "introspect@8", "kind": "introspect", "devices": 8, **short}))
            steps.append(("vigil", {"name": "jwks@8", "kind": "jwks", "devices": 8, **short}))
    return steps


def merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One scenario's rounds as one result: totals over the summed windows."""
    if len(parts) == 1:
        merged = dict(parts[0])
        merged["rounds"] = 1
        merged.pop("raw", None)
        return merged
    first = parts[0]
    elapsed = sum(p["duration_s"] for p in parts)
    ok = sum(p["ok"] for p in parts)
    n = sum(p["requests"] for p in parts)
    latencies = sorted(v for p in parts for v in p["raw"]["latencies_ms"])
    sql_n = sum(p["raw"]["sql_n"] for p in parts)
    per_k = 1000 / n if n else 0.0

    def pct(q: float) -> float:
        if not latencies:
            return 0.0
        return round(latencies[min(len(latencies) - 1, max(0, int(round(q / 100 * len(latencies) + 0.5)) - 1))], 2)

    statuses: dict[str, int] = {}
    for p in parts:
        for k, v in p["error_statuses"].items():
            statuses[k] = statuses.get(k, 0) + v
    return {
        **{k: first[k] for k in ("name", "kind", "system", "devices", "rate")},
        "rounds": len(parts),
        "rounds_rps": [p["throughput_rps"] for p in parts],
        "duration_s": round(elapsed, 3), "requests": n, "ok": ok, "errors": n - ok, "error_statuses": statuses,
        "error_samples": [e for p in parts for e in p["error_samples"]][:3],
        "throughput_rps": round(ok / elapsed, 1) if elapsed else 0.0,
        "latency_ms": {"p50": pct(50), "p95": pct(95), "p99": pct(99), "max": latencies[-1] if latencies else 0.0},
        "server_cpu_s_per_1k": round(sum(p["raw"]["server_cpu_s"] for p in parts) * per_k, 3),
        "db_cpu_s_per_1k": round(sum(p["raw"]["db_cpu_s"] for p in parts) * per_k, 3),
        "loadgen_cpu_s_per_1k": round(sum(p["raw"]["loadgen_cpu_s"] for p in parts) * per_k, 3),
        "peak_worker_rss_mb": max(p["peak_worker_rss_mb"] for p in parts),
        "worker_rss_mb": parts[-1]["worker_rss_mb"],
        "sql_per_request": round(sum(p["raw"]["sql_sum"] for p in parts) / sql_n, 2) if sql_n else None,
        "sql_per_request_max": max((p["sql_per_request_max"] or 0) for p in parts) or None,
        "served_before_django": sum(p.get("served_before_django", 0) for p in parts),
        "codes_exhausted": any(p["codes_exhausted"] for p in parts),
    }


def run_plan(args: argparse.Namespace) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    vigil_spec, vigil_seed, vigil_environ = setup_vigil(args)
    dot_spec, dot_seed, dot_environ = setup_dot(args)
    vigil_proc = start_vigil(args, vigil_spec, vigil_environ, "vigil")
    dot_proc = start_dot(args, dot_spec, dot_environ)
    specs = {"vigil": vigil_spec, "dot": dot_spec}
    parts: dict[str, list[dict[str, Any]]] = {}
    order: list[str] = []
    attested = bool(vigil_seed.get("attested_sessions"))
    android = bool(vigil_seed.get("attested_android_sessions"))
    for i, (system, scenario) in enumerate(plan(args, attested, android)):
        for result in run_loadgen({**specs[system], "scenarios": [scenario]}, f"{i:02d}-{system}"):
            if result["name"] not in parts:
                order.append(result["name"])
            parts.setdefault(result["name"], []).append(result)
    stop_server(dot_proc)
    merged = [merge(parts[name]) for name in order]
    vigil = [r for r in merged if r["system"] == "vigil"]
    dot = [r for r in merged if r["system"] == "dot"]
    if args.scale and args.scale > args.sessions:
        # The comparison is between adjacent windows under the same conditions (DOT stopped,
        # same server settings): the 10k window right before extending, the 1M one right after.
        devices = args.devices[0]
        scenario = {"name": f"refresh@{devices}[{args.sessions:,} sessions]", "kind": "refresh", "devices": devices,
                    "warmup": args.warmup, "duration": args.duration, "max_requests": args.max_requests}
        for result in run_loadgen({**vigil_spec, "scenarios": [scenario]}, "vigil-scale-before"):
            result.pop("raw", None)
            vigil.append(result)
        stop_server(vigil_proc)
        print(f"vigil: extend to {args.scale:,} sessions", flush=True)
        started = time.monotonic()
        run([str(VIGIL_BIN / "python"), "-m", "bench.seed_vigil", "--extend", str(args.sessions),
             "--sessions", str(args.scale)], vigil_environ, ROOT, "vigil-scale-seed")
        vigil_seed["scale_seed_wall_s"] = round(time.monotonic() - started, 2)
        vigil_proc = start_vigil(args, vigil_spec, vigil_environ, "vigil-scale")
        scenario = {"name": f"refresh@{devices}[{args.scale:,} sessions]", "kind": "refresh", "devices": devices,
                    "warmup": args.warmup, "duration": args.duration, "max_requests": args.max_requests}
        for result in run_loadgen({**vigil_spec, "sessions": args.scale, "scenarios": [scenario]}, "vigil-scale"):
            result.pop("raw", None)
            vigil.append(result)
    stop_server(vigil_proc)
    return vigil, dot, {"vigil": vigil_seed, "dot": dot_seed}


def bench_logins(args: argparse.Namespace) -> dict[str, Any]:
    out = run([str(VIGIL_BIN / "python"), "-m", "bench.logins", "--seconds", str(args.login_seconds)],
              {**base_env(), "PYTHONPATH": str(ROOT)}, ROOT, "logins")
    return json.loads(out.strip().splitlines()[-1])
