"""Vigil's token endpoint against django-oauth-toolkit, side by side on this machine.

``scripts/bench.sh`` runs this with Vigil's virtualenv (``make bench``, ``make bench-quick``).
One run: throwaway PostgreSQL databases, bulk seeding, each server alone under the same
gunicorn settings, the load generator (``bench/loadgen.py``) as a separate process on
127.0.0.1, then tables, ratios (Vigil throughput / DOT throughput: above 1 means Vigil
serves more), the password-hashing rate, a JSON file in ``bench/results/`` and the
summary block of ``docs/benchmarks.md``. Servers and databases are removed on every exit.
"""

# This module is the command line and the run's order; beside it, run_services.py (what a run starts
# and removes on exit: PostgreSQL, databases, Redis, the WSGI servers), run_systems.py (Vigil and DOT:
# settings, seeding, starting), run_schedule.py (the A-B-B-A windows, merged rounds, the scale run)
# and run_report.py (tables, ratios, bench/results/*.json, the docs/benchmarks.md block).

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from datetime import UTC, datetime

from run_report import (
    RESULTS,
    android_status,
    attested_pending,
    machine,
    ratio_lines,
    ratios,
    render_summary,
    update_docs,
)
from run_schedule import bench_logins, run_plan
from run_services import LOGDIR, ROOT, Server, cleanup, remove_on_exit, start_postgres


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="about 4 minutes: 8 devices, short windows, no scale run")
    parser.add_argument("--sessions", type=int, default=10_000, help="live sessions seeded in each system")
    parser.add_argument("--scale", type=int, default=None,
                        help="then extend Vigil to this many sessions and measure refresh again (full: 1000000)")
    parser.add_argument("--devices", type=lambda s: [int(x) for x in s.split(",")], default=None,
                        help="concurrent devices, comma separated (quick: 8; full: 8,32)")
    parser.add_argument("--duration", type=int, default=None, help="measured seconds per scenario")
    parser.add_argument("--warmup", type=int, default=None, help="unmeasured seconds before each window")
    parser.add_argument("--rate", type=lambda v: [int(x) for x in v.split(",") if int(x) > 0], default=None,
                        help="open-loop refresh arrival rates per second, comma separated (full: 50,200; 0 = off)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating Vigil/DOT windows per scenario")
    parser.add_argument("--workers", type=int, default=2 * (os.cpu_count() or 1), help="server workers, both")
    parser.add_argument("--server", type=Server, choices=list(Server), default=Server.GUNICORN,
                        help="the WSGI server both systems run under (default gunicorn, as deployed)")
    parser.add_argument("--max-requests", type=int, default=200_000, help="hard cap per scenario")
    parser.add_argument("--login-seconds", type=float, default=None)
    parser.add_argument("--no-docs", action="store_true", help="do not rewrite docs/benchmarks.md")
    parser.add_argument("--no-attested", dest="attested", action="store_false",
                        help="skip the attested (App Attest + DPoP) refresh scenario, and the Android one")
    parser.add_argument("--no-android", dest="android", action="store_false",
                        help="skip the attested Android (key signature + Play Integrity + DPoP) refresh scenario")
    parser.add_argument("--play-integrity-max-age", type=int, default=0, metavar="MINUTES",
                        help="the bench Android app's play_integrity_max_age_minutes (default 0, Vigil's: "
                             "a Play Integrity verdict on every refresh)")
    args = parser.parse_args(argv)
    quick = args.quick
    args.devices = args.devices or ([8] if quick else [8, 32])
    args.duration = args.duration or (10 if quick else 30)
    args.warmup = args.warmup if args.warmup is not None else (3 if quick else 5)
    args.rate = args.rate if args.rate is not None else ([] if quick else [50, 200])
    args.scale = args.scale if args.scale is not None else (0 if quick else 1_000_000)
    args.login_seconds = args.login_seconds or (2.0 if quick else 5.0)
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    remove_on_exit()
    started_at = datetime.now(UTC)
    command = "./scripts/bench.sh " + shlex.join(argv) if argv else "./scripts/bench.sh"
    mode = "quick" if args.quick else "full"
    print(f"bench ({mode}): logs in {LOGDIR}", flush=True)
    try:
        start_postgres()
        info = machine()
        load = {"start": os.getloadavg()[0]}
        vigil, dot, seeds = run_plan(args)
        load["end"] = os.getloadavg()[0]
        attested_ran = any(r["kind"] == "attested_refresh" and r["ok"] for r in vigil)
        pending = attested_pending(args, seeds["vigil"])
        print("password hashing", flush=True)
        logins = bench_logins(args)
    finally:
        cleanup()
    found = ratios(vigil, dot, args.devices, attested_ran)
    stamp = started_at.strftime("%Y%m%dT%H%M%SZ")
    results_file = RESULTS / f"{stamp}-{mode}.json"
    report = {
        "started_at": started_at.strftime("%Y-%m-%d %H:%M UTC"), "mode": mode, "command": command,
        "results_file": str(results_file.relative_to(ROOT)), "machine": info,
        "config": {"server": args.server, "workers": args.workers,
                   "sessions": args.sessions, "scale": args.scale, "devices": args.devices,
                   "duration_s": args.duration, "rounds": args.rounds, "warmup_s": args.warmup,
                   "open_loop_rate": args.rate,
                   "ratio_definition": "Vigil throughput / django-oauth-toolkit throughput, same devices",
                   "attested_refresh": "ran" if attested_ran else f"pending: {pending}",
                   "attested_refresh_android": android_status(args, seeds["vigil"], vigil),
                   "play_integrity_max_age_minutes": args.play_integrity_max_age},
        "seed": seeds, "vigil": vigil, "dot": dot, "logins": logins,
        "ratios": found, "load_average_1m": {k: round(v, 2) for k, v in load.items()},
    }
    report["ratio_lines"] = ratio_lines(found, args.devices, attested_ran, pending)
    for secret_key in ("service_secret",):
        report["seed"]["vigil"].pop(secret_key, None)
    RESULTS.mkdir(exist_ok=True)
    results_file.write_text(json.dumps(report, indent=1) + "\n")
    summary = render_summary(report)
    if not args.no_docs:
        update_docs(summary, mode)
    print()
    print("\n".join(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
