"""gunicorn settings for Vigil: ``gunicorn -c gunicorn.conf.py`` (README "Deploying").

In production Vigil runs behind a TLS proxy that buffers request bodies (nginx's default
``proxy_request_buffering on``): the proxy receives a slow client's whole body before it
opens a connection to gunicorn, so slow clients cost the proxy a few kilobytes, not a
worker. These settings keep Vigil answering when a slow client reaches it without one:

- ``worker_class = "gthread"``: each worker process serves ``threads`` requests at once.
  With the ``sync`` class one client that announces a ``Content-Length`` and sends the body
  slowly holds a whole process: four such clients held all four workers of the former
  ``-w 4`` and discovery timed out until they hung up (issue 12). gthread also parks a
  connection that has sent nothing yet (or is idle between keep-alive requests) in the
  worker's poller, holding no thread. Async workers (gevent) would hold thousands of slow
  clients, but would run the Django ORM, psycopg and Celery's client under monkey-patching
  with one database connection per greenlet: not worth it when the proxy is the answer.
- ``wsgi_app = "vigil.slow_clients:application"``: Django behind a deadline for the request
  body (``VIGIL_BODY_TIMEOUT``, 10 s in total): a client slower than that gets ``408`` and
  its connection closed, so a slow body holds a thread for seconds, not until the client
  gives up, and Django never meets a half-read body.
- ``timeout = 30``: the worker heartbeat; a process that stops answering its arbiter for
  30 s is replaced. ``graceful_timeout = 30`` lets requests in flight finish at a restart.
- ``keepalive = 5``: idle keep-alive connections are closed after 5 s (parked, not holding
  threads, but holding sockets).
- ``workers = 2 × CPUs`` with ``threads = 8``: 32 requests at once on 2 CPUs, and at most
  that many PostgreSQL connections per host (``DATABASE_CONN_MAX_AGE`` keeps one per
  thread); stay below PostgreSQL's ``max_connections`` (100 by default) over all hosts.

- **Metrics** (docs/operations.md "Metrics"): with ``PROMETHEUS_MULTIPROC_DIR`` set (a new,
  empty directory at every start; ``scripts/up.sh`` and the deploy procedure do it) each
  worker writes its samples there and ``/metrics`` adds up every worker's; ``child_exit``
  tells prometheus_client a worker is gone. Without it each worker reports only its own.
- **Logs**: gunicorn's own lines are JSON like Vigil's (``core/logging.py``), unless
  ``VIGIL_LOG_FORMAT=plain``. One access line per request: Vigil's ``vigil.request``
  (``ops/middleware.py``, ``VIGIL_REQUEST_LOG``), which leaves out the query string (codes
  and tokens). gunicorn's own access line is off (``logger_class``) unless asked for with
  ``--access-logfile``: the JSON ``logconfig_dict`` would otherwise turn it on, a second line
  per request carrying the query string. Requests gunicorn refuses before Vigil sees them are
  still warnings on ``gunicorn.error``.

Any of these can be overridden on the command line (``-w 1``) or in ``GUNICORN_CMD_ARGS``.
"""

from __future__ import annotations

import multiprocessing
import os
from typing import Any

from gunicorn.glogging import Logger

wsgi_app = "vigil.slow_clients:application"
bind = "127.0.0.1:8000"  # behind the TLS proxy on the same host; -b overrides
worker_class = "gthread"
workers = 2 * multiprocessing.cpu_count()
threads = 8
timeout = 30
graceful_timeout = 30
keepalive = 5


def child_exit(server: Any, worker: Any) -> None:
    """A worker exited: its live gauges stop counting (prometheus_client multiprocess mode)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


class OneAccessLine(Logger):
    """gunicorn's logger without gunicorn's access line (Vigil writes the request's line), unless
    one is asked for by name (``--access-logfile``)."""

    def access(self, resp: Any, req: Any, environ: Any, request_time: Any) -> None:
        if self.cfg.accesslog:
            super().access(resp, req, environ, request_time)


logger_class = OneAccessLine

if os.environ.get("VIGIL_LOG_FORMAT", "json").strip().lower() != "plain":
    logconfig_dict = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "core.logging.JsonLineFormatter"}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}},
        "loggers": {
            "gunicorn.error": {"level": "INFO", "handlers": ["stderr"], "propagate": False},
        },
        "root": {"level": "INFO", "handlers": ["stderr"]},
    }
