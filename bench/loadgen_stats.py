"""The load generator's readings (``bench/loadgen.py``): the server's and the bench
database's CPU from ``/proc`` at a window's edges, worker memory, and one scenario's result
(throughput, latency percentiles, errors, CPU per 1,000 requests, SQL per request) from what
its device threads recorded.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

CLK_TCK = os.sysconf("SC_CLK_TCK")


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


@dataclass
class Window:
    """One scenario's run: what each device thread recorded, the window's edges (``t0`` the
    start, ``m0``/``m1`` the measured window, ``real0``/``real1`` when the CPU was read) and
    the readings at them, the requests issued, the first errors and whether the codes ran out."""

    records: list[list[Record]]
    t0: float
    m0: float
    m1: float
    real0: float
    real1: float
    cpu0: CpuSample
    cpu1: CpuSample
    issued: int
    errors_sample: list[str]
    exhausted: bool


def summarize(scenario: dict[str, Any], system: str, master: int, w: Window) -> dict[str, Any]:
    """The scenario's result over its measured window; ``raw`` keeps the readings
    ``bench/run_schedule.py`` merges the rounds of one scenario from."""
    rate, devices = scenario.get("rate"), scenario["devices"]
    records, t0, m0, m1, real0, real1 = w.records, w.t0, w.m0, w.m1, w.real0, w.real1
    cpu0, cpu1, errors_sample = w.cpu0, w.cpu1, w.errors_sample
    window_end = min(m1, real1)
    if rate:
        # Open loop: what completed inside the window, latency from its scheduled time (a
        # server that falls behind shows it as queueing, not as fewer requests sent).
        measured = [r for rs in records for r in rs if m0 <= r.end <= window_end]
    else:
        measured = [r for rs in records for r in rs if r.start >= m0 and r.end <= window_end]
    behind = max(0, int((window_end - t0) * rate) - w.issued) if rate else 0
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
        "system": system,
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
        "codes_exhausted": w.exhausted,
        "open_loop_arrivals_not_sent": behind,
        # Raw readings, so bench/run_schedule.py can merge rounds of the same scenario.
        "raw": {
            "latencies_ms": [round(v, 3) for v in latencies],
            "server_cpu_s": cpu1.server - cpu0.server,
            "db_cpu_s": db_delta(cpu0, cpu1),
            "loadgen_cpu_s": cpu1.loadgen - cpu0.loadgen,
            "sql_sum": sum(queries),
            "sql_n": len(queries),
        },
    }
