"""Project-wide pytest set-up: environment, markers that skip with a reason when a
service is missing locally (CI sets VIGIL_REQUIRE_SERVICES=1 and fails on such skips)."""

from __future__ import annotations

import functools
import os
import shutil
import socket
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

os.environ.setdefault("VIGIL_TESTING", "1")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vigil.settings")
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

from collections.abc import Iterator  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402

pytest_plugins = ["attestation.testing.fixtures"]


def _reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), timeout=1):
            return True
    except OSError:
        return False


#: axe-core for the accessibility tests, pinned in tests/a11y/package-lock.json.
A11Y_DIR = Path(__file__).resolve().parent / "tests" / "a11y"
AXE_SCRIPT = A11Y_DIR / "node_modules" / "axe-core" / "axe.min.js"


@functools.cache
def _axe_missing() -> str | None:
    """axe-core installed from the lock file (``npm ci``), installing it first (once) if npm is here."""
    if not AXE_SCRIPT.exists() and shutil.which("npm"):
        try:
            subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--silent"], cwd=A11Y_DIR, check=False,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
        except (OSError, subprocess.TimeoutExpired):
            pass
    if AXE_SCRIPT.exists():
        return None
    return f"needs axe-core: cd {A11Y_DIR} && npm ci --no-audit --no-fund (apt-get install npm)"


def _missing_service(marker: str) -> str | None:
    if marker == "postgres":
        url = os.environ.get("DATABASE_URL", "")
        if not url.startswith(("postgres://", "postgresql://")):
            return "needs PostgreSQL: set DATABASE_URL=postgres://postgres@127.0.0.1:5432/vigil"
        return None if _reachable(url, 5432) else f"PostgreSQL at {url} is not reachable"
    if marker in {"redis", "celery"}:
        url = os.environ.get("REDIS_URL", "")
        if not url:
            return f"needs Redis for {marker}: set REDIS_URL=redis://127.0.0.1:6379/0"
        return None if _reachable(url, 6379) else f"Redis at {url} is not reachable"
    if marker == "nginx":
        if not os.path.exists("/usr/sbin/nginx"):
            return "needs nginx at /usr/sbin/nginx (apt-get install nginx)"
        return None
    if marker == "prometheus":
        missing = [path for path in ("/usr/bin/prometheus", "/usr/bin/promtool") if not os.path.exists(path)]
        return f"needs {' and '.join(missing)} (apt-get install prometheus)" if missing else None
    if marker == "kotlin":
        if not shutil.which("kotlinc") or not shutil.which("java"):
            return "needs kotlinc and java to compile the Kotlin listings of docs/mobile (apt-get install kotlin)"
        return None
    if marker == "a11y":
        return _missing_service("browser") or _axe_missing()
    if marker == "browser":
        if not shutil.which("chromium") and not os.path.exists("/usr/bin/chromium"):
            return "needs Chromium at /usr/bin/chromium (apt-get install chromium)"
        try:
            import playwright  # noqa: F401
        except ImportError:
            return "needs the playwright package"
    return None


SERVICE_MARKERS = ("postgres", "redis", "celery", "browser", "nginx", "a11y", "prometheus", "kotlin")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        for name in SERVICE_MARKERS:
            if item.get_closest_marker(name) and os.environ.get("VIGIL_REQUIRE_SERVICES") != "1":
                reason = _missing_service(name)
                if reason:
                    item.add_marker(pytest.mark.skip(reason=f"[service-missing:{name}] {reason}"))


def pytest_runtest_setup(item: pytest.Item) -> None:
    """In CI (VIGIL_REQUIRE_SERVICES=1) a missing service is a failure, not a skip."""
    if os.environ.get("VIGIL_REQUIRE_SERVICES") != "1":
        return
    for name in SERVICE_MARKERS:
        if item.get_closest_marker(name):
            reason = _missing_service(name)
            if reason:
                pytest.fail(f"required service missing in CI: {reason}", pytrace=False)


@pytest.fixture(autouse=True)
def _clear_cache() -> None:
    from django.core.cache import cache

    from core import config_cache

    cache.clear()
    config_cache.clear_local()


@pytest.fixture
def admin_client(admin_user: Any) -> Any:
    """pytest-django's ``admin_client`` (a client of its own), signed in with a second factor:
    the admin demands one (``accounts.admin_site``)."""
    from django.test import Client

    from accounts.testing import sign_in_with_second_factor

    return sign_in_with_second_factor(Client(), admin_user, "password")


@pytest.fixture
def eager_celery() -> Iterator[None]:
    """Celery tasks queued during the test run in the test's process (tests.celery_support.eager_tasks)."""
    from tests.celery_support import eager_tasks

    with eager_tasks():
        yield


@pytest.fixture
def allow_private_outbound(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Let ``core.outbound`` reach the test's own servers on 127.0.0.1 (off by default:
    ``IDP_OUTBOUND_ALLOW_PRIVATE_ADDRESSES``), in this process and in the workers it starts."""
    settings.IDP_OUTBOUND_ALLOW_PRIVATE_ADDRESSES = True
    monkeypatch.setenv("IDP_OUTBOUND_ALLOW_PRIVATE_ADDRESSES", "1")
