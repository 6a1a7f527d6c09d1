"""Vigil's production settings (``vigil.settings``, read from the environment) plus the
bench's per-request SQL counter. gunicorn runs Vigil with this module under the bench;
nothing else changes."""

from __future__ import annotations

import os

from vigil.settings import *  # noqa: F401,F403
from vigil.settings import MIDDLEWARE

if os.environ.get("BENCH_COUNT_QUERIES") == "1":
    MIDDLEWARE = ["bench.querycount.QueryCountMiddleware", *MIDDLEWARE]
