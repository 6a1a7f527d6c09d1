"""Time Vigil's token endpoint in process (no gunicorn, no network, no profiler): wall and
CPU milliseconds per request and SQL statements per request, for quick before/after checks
while working on the hot path. Same set-up as ``bench/profile_refresh.py``.

    .venv/bin/python -m bench.time_inprocess [--requests 300] [--kind attested_refresh]
"""

from __future__ import annotations

import argparse
import time

from bench import profile_refresh


def timed(args: argparse.Namespace) -> None:
    import logging

    import django

    django.setup()
    logging.getLogger("vigil.security").handlers = [logging.NullHandler()]
    from django.db import connection
    from django.test import Client

    client = Client(HTTP_HOST="localhost", HTTP_X_FORWARDED_PROTO="https")
    one = profile_refresh.request_maker(client, args.kind)
    for i in range(1, 21):
        one(i)
    statements: list[str] = []

    def keep(execute, sql, params, many, context):  # type: ignore[no-untyped-def]
        statements.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(keep):
        one(21)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0] if connection.vendor == "postgresql" else None
    wall, cpu, pg = time.perf_counter(), time.process_time(), _cpu_seconds(backend)
    for i in range(22, 22 + args.requests):
        one(i)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    pg = _cpu_seconds(backend) - pg
    print(f"{args.kind}: {1000 * wall / args.requests:.2f} ms wall, {1000 * cpu / args.requests:.2f} ms CPU "
          f"per request (client side included), {1000 * pg / args.requests:.2f} ms PostgreSQL backend CPU, "
          f"{len(statements)} SQL statements")
    if args.sql:
        for sql in statements:
            print("  ", sql[:200])


def _cpu_seconds(pid: int | None) -> float:
    """utime + stime of a local process (the PostgreSQL backend of this connection)."""
    if pid is None:
        return 0.0
    import os

    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--kind", choices=profile_refresh.KINDS, default="attested_refresh")
    parser.add_argument("--sql", action="store_true", help="print the SQL of one request")
    args = parser.parse_args()
    profile_refresh.run(args, timed)


if __name__ == "__main__":
    main()
