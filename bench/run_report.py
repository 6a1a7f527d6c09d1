"""The report of one run (``bench/run.py``): the machine, a table per system, the ratios,
the password-hashing rates, the JSON file in ``bench/results/`` and the "Latest quick run" /
"Latest full run" block of ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
from pathlib import Path
from typing import Any

import pg_server  # bench/, beside this script (run as bench/run.py)
import run_services as services
from run_services import BENCH, DOT_BIN, ROOT, Server, pg_admin

RESULTS = BENCH / "results"
DOCS = ROOT / "docs" / "benchmarks.md"
MARKS = "<!-- bench:latest-{mode}:start -->", "<!-- bench:latest-{mode}:end -->"


def machine() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        mem_kb = 0
    with pg_admin() as conn:
        pg_version = conn.execute("SHOW server_version").fetchone()[0]
    pg_settings = {"server": "BENCH_PG" if os.environ.get("BENCH_PG") else "the bench's own (bench/pg_server.py)",
                   **pg_server.settings_in_effect(services.PG)}
    dot_version = subprocess.run([str(DOT_BIN / "python"), "-c", "import oauth2_provider as o; print(o.__version__)"],
                                 capture_output=True, text=True).stdout.strip()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    return {
        "cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(), "python": platform.python_version(), "postgresql": pg_version,
        "django_oauth_toolkit": dot_version, "vigil_commit": commit, "postgresql_settings": pg_settings,
    }


def _pg_line(m: dict[str, Any]) -> str:
    settings = dict(m.get("postgresql_settings") or {})
    server = settings.pop("server", "the machine's")
    return f"{server}: " + ", ".join(f"`{name}` {value}" for name, value in settings.items())


HEADER = ("| scenario | req/s | p50 ms | p95 ms | p99 ms | errors | server CPU s/1k | DB CPU s/1k "
          "| peak worker RSS MB | SQL/req |")


def table(results: list[dict[str, Any]]) -> list[str]:
    lines = [HEADER, "|" + "---|" * 10]
    for r in results:
        lat = r["latency_ms"]
        lines.append(
            f"| {r['name']} | {r['throughput_rps']:.1f} | {lat['p50']:.1f} | {lat['p95']:.1f} | {lat['p99']:.1f} "
            f"| {r['errors']} | {r['server_cpu_s_per_1k']:.2f} | {r['db_cpu_s_per_1k']:.2f} "
            f"| {r['peak_worker_rss_mb']:.0f} | {r['sql_per_request'] if r['sql_per_request'] is not None else '-'} |"
        )
    return lines


def ratios(vigil: list[dict[str, Any]], dot: list[dict[str, Any]], devices: list[int],
           attested_ran: bool) -> dict[str, float]:
    """``mine/theirs@d``: Vigil req/s over DOT req/s. ``cpu:mine/theirs@d``: DOT's CPU per
    request (gunicorn + PostgreSQL) over Vigil's, which other load on the machine skews less."""
    by_name = {r["name"]: r for r in vigil + dot}
    out: dict[str, float] = {}
    pairs = [("attested_refresh_android", "dot_refresh"), ("refresh", "dot_refresh"),
             ("code_exchange", "dot_code_exchange")]
    if attested_ran:
        pairs.insert(0, ("attested_refresh", "dot_refresh"))
    small = [r for r in vigil if r["name"].startswith(f"refresh@{devices[0]}[") and r["throughput_rps"]]
    if len(small) == 2:  # the scale run: [10k sessions] then [1M sessions], adjacent windows
        out["scale"] = round(small[1]["throughput_rps"] / small[0]["throughput_rps"], 2)
        out["scale_base"], out["scale_sessions"] = (
            float(r["name"].split("[")[1].split()[0].replace(",", "")) for r in small)
    for d in devices:
        for mine, theirs in pairs:
            a, b = by_name.get(f"{mine}@{d}"), by_name.get(f"{theirs}@{d}")
            if a and b and b["throughput_rps"]:
                out[f"{mine}/{theirs}@{d}"] = round(a["throughput_rps"] / b["throughput_rps"], 2)
                cpu_a = a["server_cpu_s_per_1k"] + a["db_cpu_s_per_1k"]
                cpu_b = b["server_cpu_s_per_1k"] + b["db_cpu_s_per_1k"]
                if cpu_a:
                    out[f"cpu:{mine}/{theirs}@{d}"] = round(cpu_b / cpu_a, 2)
    return out


def attestation_in_token_endpoint() -> str | None:
    """Where the token endpoint reads the attestation form parameters, if it does yet."""
    pattern = re.compile(r"""["'](attestation|attestation_challenge|client_data)["']""")
    for folder in ("idp/oauth", "sessions/flows"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if "tests" in path.parts:
                continue
            if pattern.search(path.read_text(errors="replace")):
                return str(path.relative_to(ROOT))
    return None


def attested_pending(args: argparse.Namespace, seed: dict[str, Any]) -> str:
    """Why the attested scenario has no result, when it has none."""
    if not args.attested:
        return "skipped with --no-attested"
    if seed.get("attested_error"):
        return f"attested devices could not be seeded: {seed['attested_error']}"
    if attestation_in_token_endpoint() is None:
        return "the token endpoint does not take attestation yet"
    return "the attested scenario ran without a successful refresh: see its error samples"


def android_status(args: argparse.Namespace, seed: dict[str, Any], vigil: list[dict[str, Any]]) -> str:
    if any(r["kind"] == "attested_refresh_android" and r["ok"] for r in vigil):
        return "ran"
    if not (args.attested and args.android):
        return "skipped (--no-attested or --no-android)"
    if seed.get("attested_android_error"):
        return f"Android devices could not be seeded: {seed['attested_android_error']}"
    return "ran without a successful refresh: see its error samples"


def ratio_lines(found: dict[str, float], devices: list[int], attested_ran: bool, pending: str) -> list[str]:
    first = devices[0]
    refresh = "attested_refresh" if attested_ran else "refresh"
    lines = ["throughput ratios are Vigil req/s / DOT req/s; cpu ratios are DOT CPU per request / Vigil's "
             "(the WSGI server + PostgreSQL); above 1.00 favours Vigil"]
    for d in devices:
        for key in (f"attested_refresh/dot_refresh@{d}", f"attested_refresh_android/dot_refresh@{d}",
                    f"refresh/dot_refresh@{d}", f"code_exchange/dot_code_exchange@{d}"):
            if key in found:
                cpu = found.get("cpu:" + key, 0)
                lines.append(f"{d} devices: {key.split('@')[0]} = {found[key]:.2f} (cpu {cpu:.2f})")
    if "scale" in found:
        lines.append(f"scale: refresh at {found['scale_sessions']:,.0f} sessions / at {found['scale_base']:,.0f}, "
                     f"adjacent windows = {found['scale']:.2f} (target >= 0.90)")
    if not attested_ran:
        lines.append(f"attested_refresh: pending ({pending}); the plain refresh path is measured as `refresh`")
    lines.append(f"{refresh}/dot_refresh = {found.get(f'{refresh}/dot_refresh@{first}', 0.0):.2f}")
    lines.append(f"code_exchange/dot_code_exchange = {found.get(f'code_exchange/dot_code_exchange@{first}', 0.0):.2f}")
    return lines


def logins_lines(logins: dict[str, Any]) -> list[str]:
    lines = ["| hasher | parameters | ms per login | logins/s per core | logins/s on this box |",
             "|---|---|---|---|---|"]
    for h in logins["hashers"]:
        lines.append(f"| {h['name']} | {h['params']} | {h['ms_per_hash']:.1f} | {h['per_core']:.1f} "
                     f"| {h['box']:.1f} |")
    lines.append(f"| Keycloak (published) | argon2 defaults | - | {logins['keycloak_per_vcpu']} per vCPU "
                 f"| {logins['keycloak_per_vcpu'] * (os.cpu_count() or 1)} for {os.cpu_count()} vCPU |")
    return lines


def _server_line(config: dict[str, Any]) -> str:
    if config.get("server", Server.GUNICORN) == Server.GRANIAN:
        return f"granian {config['workers']} WSGI workers of one blocking thread each"
    return f"gunicorn {config['workers']} sync workers each"


def render_summary(report: dict[str, Any]) -> list[str]:
    m = report["machine"]
    lines = [
        f"Run {report['started_at']} ({report['mode']}), Vigil commit `{m['vigil_commit']}`, "
        f"results `{report['results_file']}`.",
        "",
        f"Command: `{report['command']}`",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Linux {m['kernel']}, Python {m['python']}, "
        f"PostgreSQL {m['postgresql']} on the same cores ({_pg_line(m)}), "
        f"django-oauth-toolkit {m['django_oauth_toolkit']}, "
        f"{_server_line(report['config'])}, {report['config']['sessions']:,} seeded sessions. "
        f"1-minute load average at start / end: "
        f"{' / '.join(str(v) for v in report['load_average_1m'].values())} (anything above 0 is other work "
        "sharing the 2 cores).",
        "",
        "Vigil:",
        "",
        *table(report["vigil"]),
        "",
        "django-oauth-toolkit:",
        "",
        *table(report["dot"]),
        "",
        "Password logins (hash verification only):",
        "",
        *logins_lines(report["logins"]),
        "",
        "```",
        *report["ratio_lines"],
        "```",
    ]
    return lines


def update_docs(summary: list[str], mode: str) -> None:
    """Replace the block of this mode (``full`` or ``quick``) in docs/benchmarks.md."""
    start, end = (mark.format(mode=mode) for mark in MARKS)
    text = DOCS.read_text() if DOCS.exists() else "# Benchmarks\n"
    if start not in text:
        text += f"\n## Latest {mode} run\n\n{start}\n{end}\n"
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    DOCS.write_text(head + start + "\n" + "\n".join(summary) + "\n" + end + tail)
