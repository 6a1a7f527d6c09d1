"""Where the CPU of one token request goes, stage by stage (issue 19: "a breakdown that names
where each millisecond goes"). In process, like ``bench/time_inprocess.py`` (production
settings, PostgreSQL, Redis), without a profiler's per-call overhead: the stages below are
wrapped with a CPU-time accumulator (``time.process_time``, a few microseconds per wrapped
call), and the PostgreSQL backend's own CPU is read from ``/proc``.

    .venv/bin/python -m bench.breakdown [--kind attested_refresh] [--requests 400]

Times are inclusive (a stage contains the stages indented under it); "Django and middleware"
is the request's CPU outside the view; "client side" is the simulated device and Django's
test client.
"""

from __future__ import annotations

import argparse
import importlib
import time
from collections.abc import Callable
from typing import Any

from bench import profile_refresh, time_inprocess

# (label, depth, "module:attribute" or "module:Class.method")
STAGES: list[tuple[str, int, str]] = [
    ("whole request (Django test client's handler)", 0, "django.core.handlers.base:BaseHandler.get_response"),
    ("token view", 1, "idp.views:_oauth_post"),
    ("client authentication", 2, "idp.oauth.client_auth:ClientAuthenticator.__call__"),
    ("config generation (a Redis GET, core.direct_get)", 3, "core.config_cache:_shared_generation"),
    ("refresh token look-up (1 SELECT)", 2, "sessions.flows.refresh:present"),
    ("rows to model instances", 3, "core.sql:JoinedQuery.instances"),
    ("DPoP proof", 2, "idp.oauth.dpop_binding:check_token_request"),
    ("jti replay mark alone (Redis SET NX; not on an attested refresh)", 3, "sessions.dpop.replay:remember_jti"),
    ("device attestation", 2, "idp.oauth.attestation_binding:verify_at_refresh"),
    ("challenge claim with the jti and the streak (one round trip)", 3,
     "attestation.flows.challenges:consume_challenge"),
    ("App Attest assertion (crypto)", 3, "attestation.apple.assertion:verify_assertion"),
    ("Android key signature + verdict", 3, "attestation.flows.android_devices:verify_android_refresh"),
    ("counter advance (alone: SQLite, refusals)", 3, "attestation.flows.devices:_advance_counter"),
    ("failure streak (read with the claim)", 3, "sessions.flows.device_binding:take_failures"),
    ("next challenge (HMAC)", 3, "attestation.flows.challenges:issue_challenge"),
    ("rotate and issue", 2, "sessions.flows.refresh:rotate"),
    ("policies (health, risk, scope)", 3, "idp.oauth.grants.base:VigilGrantMixin.apply_policies"),
    ("access token (claims, JWT, row)", 3, "sessions.flows.tokens:issue_access_token"),
    ("JWT signature", 4, "core.jwt_tokens:sign"),
    ("refresh token (row)", 3, "sessions.flows.tokens:issue_refresh_token"),
    ("rotation statement (1 WITH, with the counter)", 3, "sessions.flows.rotation_statement:_run"),
    ("row values for the statement", 4, "core.sql:insert_values"),
    ("after the commit: events logged", 3, "core.events:stored"),
    ("Authlib: request object", 2, "idp.oauth.server:VigilOAuth2Request.__init__"),
    ("the JSON response", 2, "idp.oauth.server:AuthorizationServer.handle_response"),
    ("security events: build", 2, "core.events:build"),
    ("security events: log lines", 2, "core.events:_log"),
    ("all SQL round trips (client side)", 1, "django.db.backends.utils:CursorWrapper.execute"),
    ("redis-py commands (client side)", 1, "redis.client:Redis.execute_command"),
    ("redis-py pipelines (client side)", 1, "redis.client:Pipeline.execute"),
]


class Meter:
    def __init__(self) -> None:
        self.cpu: dict[str, float] = {}
        self.wall: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self._active: set[str] = set()

    def wrap(self, label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            if label in self._active:  # recursion: count the outermost call only
                return fn(*args, **kwargs)
            self._active.add(label)
            cpu, wall = time.process_time(), time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.cpu[label] = self.cpu.get(label, 0.0) + time.process_time() - cpu
                self.wall[label] = self.wall.get(label, 0.0) + time.perf_counter() - wall
                self.calls[label] = self.calls.get(label, 0) + 1
                self._active.discard(label)

        return timed


def _install(meter: Meter) -> None:
    for label, _, target in STAGES:
        module_name, attribute = target.split(":")
        module = importlib.import_module(module_name)
        owner: Any = module
        *path, name = attribute.split(".")
        for part in path:
            owner = getattr(owner, part)
        original = getattr(owner, name)
        setattr(owner, name, meter.wrap(label, original))
        if owner is module:  # also where other modules imported it by name
            for other in list(importlib.sys.modules.values()):  # type: ignore[attr-defined]
                if other is not None and getattr(other, name, None) is original and other is not module:
                    setattr(other, name, meter.wrap(label, original))


def breakdown(args: argparse.Namespace) -> None:
    import logging

    import django

    django.setup()
    from django.db import connection
    from django.test import Client

    # The log lines are formatted but not written (gunicorn would write them to its log).
    for name in ("vigil.security", "vigil.request"):
        for handler in logging.getLogger(name).handlers or logging.getLogger().handlers:
            handler.stream = open("/dev/null", "w")  # type: ignore[attr-defined]
    client = Client(HTTP_HOST="localhost", HTTP_X_FORWARDED_PROTO="https")
    one = profile_refresh.request_maker(client, args.kind)
    for i in range(1, 31):
        one(i)
    meter = Meter()
    _install(meter)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    for i in range(31, 51):  # warm the wrappers
        one(i)
    meter.cpu.clear(), meter.wall.clear(), meter.calls.clear()
    cpu, wall, pg = time.process_time(), time.perf_counter(), time_inprocess._cpu_seconds(backend)
    n = args.requests
    for i in range(51, 51 + n):
        one(i)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    pg = time_inprocess._cpu_seconds(backend) - pg
    per = 1000 / n
    handler = meter.cpu.get(STAGES[0][0], 0.0)
    view = meter.cpu.get(STAGES[1][0], 0.0)
    print(f"{args.kind}, {n} requests, CPU ms per request (wall ms in brackets)")
    print(f"  {'process total (server + client side)':<52} {cpu * per:6.2f}   [{wall * per:6.2f}]")
    print(f"  {'PostgreSQL backend':<52} {pg * per:6.2f}")
    print(f"  {'client side (device simulator, test client)':<52} {(cpu - handler) * per:6.2f}")
    print(f"  {'Django and middleware (outside the view)':<52} {(handler - view) * per:6.2f}")
    for label, depth, _ in STAGES:
        if label in meter.cpu:
            calls = meter.calls[label] / n
            print(f"  {'  ' * depth}{label:<{52 - 2 * depth}} {meter.cpu[label] * per:6.2f}   "
                  f"[{meter.wall[label] * per:6.2f}]  {calls:.1f}/req")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--kind", choices=profile_refresh.KINDS, default="attested_refresh")
    args = parser.parse_args()
    profile_refresh.run(args, breakdown)


if __name__ == "__main__":
    main()
