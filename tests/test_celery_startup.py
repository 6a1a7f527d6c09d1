"""A Celery worker starts without deprecation warnings or kombu's configuration warnings: the
settings use Celery 5's names (``CELERY_`` + the lowercase setting, ``vigil/settings.py``), and
the default filesystem broker URL names a host (a bare ``filesystem://`` made kombu warn
"No hostname was supplied. Reverting to default 'localhost'" at every start, in the worker
and in beat). The worker runs as ``scripts/up.sh`` starts it, in a subprocess so that
pytest's own warning filters (pytest.ini ignores Celery's and kombu's) cannot hide anything."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Celery's warning about running as root: the test host's user, not Vigil's configuration.
ROOT_USER_WARNING = ("SecurityWarning: You're running the worker with superuser privileges", "absolutely not",
                     "Please specify a different user", "User information: uid=", "_warn_or_raise_security_error")


def _worker_log(var_dir: Path, timeout: float = 60) -> str:
    """stderr of ``celery -A vigil worker`` on the default broker, from start to ready."""
    (var_dir / "celery-broker" / "control").mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CELERY_", "VIGIL_TESTING"))}
    env.update({"DJANGO_DEBUG": "1", "VIGIL_VAR_DIR": str(var_dir), "PYTHONWARNINGS": "default"})
    log = var_dir / "worker.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "celery", "-A", "vigil", "worker", "--pool=solo",
                                 "--loglevel=INFO", "--without-heartbeat", "--without-gossip", "--without-mingle"],
                                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout
        while " ready." not in log.read_text() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        proc.terminate()
        proc.wait(15)
    return log.read_text()


def test_a_worker_starts_without_warnings(tmp_path: Path) -> None:
    log = _worker_log(tmp_path / "var")
    assert " ready." in log, log
    lines = [line for line in log.splitlines() if line.strip() and not any(w in line for w in ROOT_USER_WARNING)]
    assert not [line for line in lines if "Deprecat" in line or "Warning:" in line], log
    assert not [line for line in lines if '"level": "WARNING"' in line or '"level": "ERROR"' in line], log
    assert "Connected to filesystem://" in log  # the default broker, as in development
