"""The README's first minute, run as written: ``make up``, then ``make demo`` against it.

In a copy of the checkout (its tracked files, ``git ls-files``, and the project's ``.venv``
linked in: ``scripts/venv.sh`` sees its stamp match ``requirements.txt`` and installs
nothing), with a clean environment (``PATH``, ``HOME``, ``LANG``: no ``DATABASE_URL``,
``REDIS_URL`` or ``VIGIL_TESTING``), so ``make up`` runs on its embedded defaults: SQLite in
the copy's ``var/``, the filesystem Celery broker, a Celery worker and beat, and Apple's
DeviceCheck stand-in. The only change to the README's commands is the port, through the
overrides the README gives: ``PORT`` (web, for both commands) and ``DEVICECHECK_STANDIN_PORT``.

``make demo`` must show every step: the iOS/Android flow accepted and the copied refresh
token refused, then the three scenarios (rooted device reduced and refused on the default
client; a device that cannot attest enrolled with ``device_attested=False`` and upgraded;
a phone flagged at Apple refused after a reinstall, the flag set by the worker ``make up``
started). Then Ctrl-C (SIGINT to the process group, as a terminal sends it) must stop
everything: no process left, nothing listening. The checkout's own ``var/`` is untouched.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from .live_stack import free_port, wait_until

pytestmark = [pytest.mark.live]

ROOT = Path(__file__).resolve().parent.parent
UP_TIMEOUT = 90.0  # venv check, migrate on a new SQLite file, bootstrap_demo, four processes
DEMO_TIMEOUT = 90.0
STOP_TIMEOUT = 30.0

#: Every step of ``make demo``, in the order it prints them (``simulator.management.commands.
#: device_demo`` and ``simulator.scenarios``).
DEMO_STEPS = (
    # the basic flow
    "iOS device: signing in as demo through the system browser...",
    "  refresh 3 with a fresh attestation and DPoP proof: accepted",
    "  userinfo with the DPoP-bound access token: HTTP 200",
    "Android device: signing in as demo through the system browser...",
    "  refresh 3 with a fresh attestation and DPoP proof: accepted",
    "  userinfo with the DPoP-bound access token: HTTP 200",
    "  its refresh is refused: invalid_client_attestation — it cannot attest as the enrolled device",
    "  the real iOS device keeps working: refresh accepted",
    # rooted: reduced on the graded client, refused on the default one
    "  vigil-demo-graded (reduces rooted devices) enrolls it: scope 'openid profile', 120 s, device_health=reduced",
    "  refresh 2: scope 'openid profile', 120 s, device_health=reduced",
    "  vigil-demo-attested (default policy) refuses it: invalid_client_attestation (Device attestation failed: "
    "boot_state_unverified.)",
    # unattested: the fallback, then the upgrade
    "  enrolled with its DPoP key only: device_attested=False, scope 'openid profile'",
    "  refresh 2 with a DPoP proof alone: accepted",
    "  session upgraded to the attested device: scope 'openid profile email offline_access', "
    "device_attested absent (attested)",
    "  next refresh with an assertion of the new key: accepted",
    # DeviceCheck: flagged at Apple by the worker, refused after a reinstall
    "  enrolled; Apple has never set a bit for this phone",
    "  Apple confirmed: bit 0 of this phone is set",
    "  the revoked app's refresh: invalid_grant",
    "  its new enrollment is refused: invalid_grant (The device does not meet this client's device health policy "
    "(rule devicecheck-flagged",
)


def copy_checkout(dest: Path) -> None:
    """The tracked files as they are in the checkout (in CI's fresh clone: the commit), and
    the project's virtualenv linked in."""
    listing = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True).stdout
    for name in filter(None, listing.decode().split("\0")):
        source = ROOT / name
        if source.is_file() or source.is_symlink():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name, follow_symlinks=False)
    (dest / ".venv").symlink_to((ROOT / ".venv").resolve())


def require_installed_venv() -> None:
    """``scripts/venv.sh`` installs when ``.venv/.requirements.sha256`` differs from
    ``requirements.txt``: the test must not pip install into the shared virtualenv."""
    stamp = ROOT / ".venv" / ".requirements.sha256"
    want = hashlib.sha256((ROOT / "requirements.txt").read_bytes()).hexdigest()
    if not stamp.exists() or stamp.read_text().strip() != want:
        pytest.fail("the virtualenv is not installed from this requirements.txt: run `make venv` first "
                    "(`make test` does)", pytrace=False)


def clean_env(**extra: str) -> dict[str, str]:
    """A new terminal's environment: none of the test run's services or settings."""
    env = {name: os.environ[name] for name in ("PATH", "HOME", "LANG", "TMPDIR") if name in os.environ}
    return {**env, **extra}


def snapshot(var: Path) -> dict[str, tuple[int, int]] | None:
    if not var.exists():
        return None
    return {str(p.relative_to(var)): (p.stat().st_size, p.stat().st_mtime_ns) for p in var.rglob("*") if p.is_file()}


def group_members(pgid: int) -> list[str]:
    """The live (not zombie) processes of the process group, from /proc."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2:].split()  # after "pid (comm) ": state, ppid, pgrp...
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(text[: text.rindex(")") + 1])
    return members


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def terminal_signals() -> None:
    """SIGINT and SIGQUIT as a terminal's shell leaves them (a test run started in the
    background inherits them ignored, and a shell cannot trap a signal ignored at entry)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGQUIT, signal.SIG_DFL)


class MakeUp:
    """``make up`` in its own process group (a terminal's foreground job), output in a file."""

    def __init__(self, workdir: Path, env: dict[str, str]):
        self.workdir, self.log = workdir, workdir / "make-up.out"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(["make", "up"], cwd=workdir, env=env, stdout=out,
                                         stderr=subprocess.STDOUT, process_group=0, preexec_fn=terminal_signals)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, url: str) -> None:
        def ready() -> bool:
            assert self.proc.poll() is None, f"make up exited ({self.proc.returncode}):\n{self.output()}"
            return requests.get(url, timeout=2).status_code == 200

        wait_until(ready, UP_TIMEOUT, url)

    def interrupt(self) -> None:
        """Ctrl-C: SIGINT to every process of the group, then wait for ``make`` to return."""
        os.killpg(self.proc.pid, signal.SIGINT)
        self.proc.wait(STOP_TIMEOUT)

    def kill(self) -> None:
        if group_members(self.proc.pid):
            os.killpg(self.proc.pid, signal.SIGKILL)
        if self.proc.poll() is None:
            self.proc.wait(5)


@pytest.fixture
def checkout_copy(tmp_path: Path) -> Iterator[Path]:
    require_installed_venv()
    before = snapshot(ROOT / "var")
    copy_checkout(tmp_path / "vigil")
    yield tmp_path / "vigil"
    assert snapshot(ROOT / "var") == before, "make up / make demo wrote into the checkout's own var/"


def test_make_up_then_make_demo_as_the_readme_says(checkout_copy: Path) -> None:
    port, dc_port = free_port(), free_port()
    up = MakeUp(checkout_copy, clean_env(PORT=str(port), DEVICECHECK_STANDIN_PORT=str(dc_port)))
    try:
        up.wait_ready(f"http://127.0.0.1:{port}/readyz")
        banner = up.output()
        assert f"Vigil is running at http://localhost:{port}" in banner
        assert "devicecheck client_id=vigil-demo-devicecheck" in banner
        assert f"Health:  http://localhost:{port}/healthz" in banner
        assert listening(dc_port), "the DeviceCheck stand-in is not listening"

        started = time.monotonic()
        demo = subprocess.run(["make", "demo"], cwd=checkout_copy, env=clean_env(PORT=str(port)),
                              capture_output=True, text=True, timeout=DEMO_TIMEOUT)
        shown = demo.stdout + demo.stderr
        assert demo.returncode == 0, f"make demo failed ({demo.returncode}):\n{shown}\n--- make up:\n{up.output()}"
        assert_steps_in_order(demo.stdout)
        assert "REFUSED" not in demo.stdout and "bug!" not in demo.stdout and "skipped" not in demo.stdout
        # The operator's step (run by the demo) logs its security events where make up's go.
        assert '"event":' not in shown, f"security events among the demo's lines:\n{demo.stderr}"
        assert time.monotonic() - started < DEMO_TIMEOUT

        var = checkout_copy / "var"
        assert (var / "vigil.sqlite3").is_file()  # the embedded default, in the copy
        worker = (var / "log" / "worker.log").read_text()
        assert "attestation.devicecheck_flag_device[" in worker and "succeeded" in worker, worker[-3000:]
        security = (var / "log" / "security.jsonl").read_text()
        assert '"event": "attestation.device.revoked"' in security and "demo: revoked for abuse" in security

        up.interrupt()
        wait_until(lambda: not group_members(up.proc.pid), 10, "every process of make up to exit")
        assert not listening(port) and not listening(dc_port)
    finally:
        up.kill()


def assert_steps_in_order(out: str) -> None:
    position = 0
    for step in DEMO_STEPS:
        found = out.find(step, position)
        assert found >= 0, f"make demo did not show {step!r} (after position {position}):\n{out}"
        position = found + len(step)
