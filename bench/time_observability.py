"""What the observability layer costs one request, measured on its own (issue 15: metrics
must cost less than 3% of an attested refresh): ``ops.middleware.ObservabilityMiddleware``
around a trivial view (request id, two metric updates, the JSON request log line) and the
metrics of the two security events an attested refresh records (``ops.event_metrics``), in
prometheus_client's multiprocess mode as under gunicorn. CPU microseconds per request, best
of several rounds (a shared machine's noise only ever adds). The bench itself cannot resolve
a 3% difference between two runs: its DOT side moves by 20% from run to run on this machine.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/SCRATCH REDIS_URL=redis://127.0.0.1:6379/N \\
        .venv/bin/python -m bench.time_observability [--requests 5000] 2>/dev/null

It migrates that database and registers one client in it: use a scratch database of your own.
Each request is framed by Django's request signals, as in a server (the shared configuration
generation is read once per request).
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="vigil-obs-"))
    os.environ.update({"DJANGO_SETTINGS_MODULE": "vigil.settings", "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
                       "IDP_ISSUER": "https://localhost", "VIGIL_OBSERVABILITY": "1",
                       "IDP_KEY_ENCRYPTION_SECRET": secrets.token_urlsafe(32), "ALLOWED_HOSTS": "testserver"})
    os.environ.pop("DJANGO_DEBUG", None)
    for var in ("DATABASE_URL", "REDIS_URL"):
        if var not in os.environ:
            sys.exit(f"set {var} (a scratch database and Redis index of your own)")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command
    from django.core.signals import request_finished, request_started

    from clients.flows.registration import register_client
    from clients.models import Client

    call_command("migrate", verbosity=0)
    if not Client.objects.filter(client_id="bench-mobile").exists():
        register_client(name="Bench", public=True, redirect_uris=["com.example.app:/cb"], client_id="bench-mobile")
    from django.http import HttpResponse
    from django.test import RequestFactory
    from django.urls import resolve

    from core import config_cache
    from core.events import EventType, build
    from ops import event_metrics
    from ops.middleware import ObservabilityMiddleware

    factory = RequestFactory()

    def view(request):  # type: ignore[no-untyped-def]
        request.resolver_match = resolve("/token")
        return HttpResponse(b"{}", content_type="application/json")

    wrapped = ObservabilityMiddleware(view)
    events = [build(EventType.ATTESTATION_ASSERT, client_id="bench-mobile", platform="ios"),
              build(EventType.OAUTH_TOKEN_REFRESHED, client_id="bench-mobile")]

    def bare() -> None:
        request_started.send(sender=None)
        config_cache.cached(("bench",), lambda: 1)  # the token endpoint reads the generation anyway
        view(factory.post("/token"))
        request_finished.send(sender=None)

    def observed() -> None:
        request_started.send(sender=None)
        config_cache.cached(("bench",), lambda: 1)
        wrapped(factory.post("/token"))
        for event in events:
            event_metrics.count(event)
        request_finished.send(sender=None)

    best = {"bare": float("inf"), "observed": float("inf")}
    for _ in range(args.rounds):
        for name, one in (("bare", bare), ("observed", observed)):
            started = time.process_time()
            for _ in range(args.requests):
                one()
            best[name] = min(best[name], (time.process_time() - started) / args.requests)
    added = (best["observed"] - best["bare"]) * 1e6
    print(f"observability adds {added:.1f} µs of CPU per request (request id, 2 metric updates, the JSON "
          f"request log line, the metrics of 2 security events; multiprocess mode), best of {args.rounds} "
          f"rounds of {args.requests}")


if __name__ == "__main__":
    main()
