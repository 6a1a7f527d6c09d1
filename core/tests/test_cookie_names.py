"""``core.cookie_names``: the default cookie names' prefix, one rule for the settings module
(at import, before Django's settings exist) and for ``core.cookies.default_name``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from core.cookie_names import Prefix, default_prefix, prefixed

ROOT = Path(__file__).resolve().parents[2]


def test_an_https_deployment_names_its_cookies_with_the_host_prefix() -> None:
    assert default_prefix(True) == Prefix.HOST.value == "__Host-"
    assert prefixed("vigil_device", default_prefix(True)) == "__Host-vigil_device"


def test_under_http_the_names_stay_bare() -> None:
    assert default_prefix(False) == ""
    assert prefixed("vigil_device", default_prefix(False)) == "vigil_device"


def test_core_cookies_names_with_the_prefix_the_settings_chose(settings) -> None:
    from core.cookies import default_name

    settings.VIGIL_COOKIE_NAME_PREFIX = Prefix.SECURE.value
    assert default_name("vigil_device") == "__Secure-vigil_device"


def test_the_settings_module_can_import_it_without_django_settings() -> None:
    """Importing it configures nothing: ``django.conf`` is not even imported."""
    code = "import sys, core.cookie_names; assert 'django.conf' not in sys.modules, sorted(sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
