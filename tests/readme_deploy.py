"""The README's "Deploying with PostgreSQL and Redis" shell block, read at run time and run
as written, for ``tests/test_deploy_readme.py``.

What the test changes, and nothing else:

* **Values of exported variables** that name the example's hosts and secrets
  (``DJANGO_SECRET_KEY=...``, ``IDP_KEY_ENCRYPTION_SECRET=...``, ``DATABASE_URL``,
  ``REDIS_URL``, ``CELERY_BROKER_URL``) get the test's values; an assignment may also be
  dropped (``REDIS_URL`` in the variant without Redis). Every other assignment, e.g.
  ``IDP_ISSUER=https://id.example.com`` and ``DJANGO_BEHIND_TLS_PROXY=1``, stays as written:
  the test plays the TLS proxy for that host.
* **gunicorn's port**: the example's ``127.0.0.1:8000`` becomes a free port (or ``-b`` with
  a free port is added, should the line bind through a config file instead).
* **Long-running lines** (gunicorn, the Celery worker and beat: in the README each runs in
  its own terminal or service) start in the background, each with its own log; every other
  line runs in order under ``set -euo pipefail``.
* The block runs with a clean environment (``PATH``, ``HOME``, ``LANG``), as on a new host,
  from the repository's root, so ``.venv/bin/...`` is the project's virtualenv.

A README edit that adds a line or a variable needs no change here; one that removes what
the test substitutes fails with a message naming it."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEADING = "## Deploying with PostgreSQL and Redis"
EXAMPLE_BIND = "127.0.0.1:8000"
SERVICES = ("gunicorn", "celery")  # programs that run until stopped
DROP = None  # an override value that removes the assignment


def deploy_block(readme: Path = ROOT / "README.md") -> str:
    """The first ``sh`` code block under the deploy heading."""
    text = readme.read_text()
    assert HEADING in text, f"README has no {HEADING!r} section"
    match = re.search(r"```sh\n(.*?)```", text[text.index(HEADING):], re.S)
    assert match, f"no ```sh block under {HEADING!r}"
    return match.group(1)


def logical_lines(block: str) -> list[str]:
    """Lines with backslash continuations joined; blank lines and whole-line comments dropped."""
    joined = re.sub(r"\\\n", " ", block)
    return [line for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def program(line: str) -> str:
    return os.path.basename(shlex.split(line, comments=True)[0])


def rewrite_export(line: str, overrides: Mapping[str, str | None]) -> str:
    """The export line with the overridden assignments replaced (or dropped); every other
    word stays as written."""
    for name, value in overrides.items():
        replacement = "" if value is DROP else f"{name}={shlex.quote(value)}"
        line = re.sub(rf"(?<![\w]){name}=\S*", lambda _: replacement, line)  # noqa: B023  (called within this iteration)
    code = line.split("#", 1)[0]
    missing = re.findall(r"(\w+)=\.\.\.", code)
    assert not missing, f"the README's {missing}=... have no test value: add them to the test's overrides"
    return line if code.split() != ["export"] else ":"


@dataclass
class Plan:
    """The block as a script: ``exports`` and ``steps`` in order, then ``services``."""

    exports: list[str] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)
    services: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def plan(block: str, overrides: Mapping[str, str | None], port: int, *, start: tuple[str, ...] = SERVICES) -> Plan:
    """Sort the block's lines; services whose program is not in ``start`` are skipped."""
    result = Plan()
    for name in overrides:
        assert re.search(rf"\b{name}=", block), f"the README's deploy block no longer sets {name}"
    for line in logical_lines(block):
        if line.lstrip().startswith("export "):
            result.exports.append(rewrite_export(line, overrides))
        elif program(line) in SERVICES:
            if program(line) == "gunicorn":
                line = bind(line, port)
            (result.services if program(line) in start else result.skipped).append(line)
        else:
            result.steps.append(line)
    assert any(program(line) == "gunicorn" for line in result.services), "the deploy block starts no gunicorn"
    return result


def bind(line: str, port: int) -> str:
    """gunicorn on ``port``: the example's address replaced, or (a line that binds through a
    config file) ``-b`` added, which gunicorn lets override the file."""
    if EXAMPLE_BIND in line:
        return line.replace(EXAMPLE_BIND, f"127.0.0.1:{port}")
    command, hash_, comment = line.partition("#")
    return f"{command.rstrip()} -b 127.0.0.1:{port} {hash_}{comment}".rstrip()


def clean_env() -> dict[str, str]:
    return {name: os.environ[name] for name in ("PATH", "HOME", "LANG") if name in os.environ}


def exported_env(exports: list[str]) -> dict[str, str]:
    """The environment the block's export lines give a fresh shell."""
    script = "set -eu\n" + "\n".join(exports) + "\nenv -0\n"
    out = subprocess.run(["bash", "-c", script], env=clean_env(), capture_output=True, check=True, timeout=30).stdout
    return dict(item.split("=", 1) for item in out.decode().split("\0") if "=" in item)


class Deployment:
    """The block running in its own process group, killed by that group's id when done."""

    def __init__(self, steps: Plan, logs: Path):
        self.plan, self.logs = steps, logs
        self.script = logs / "deploy.sh"
        self.script.write_text(self._script())
        self.log = logs / "deploy.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def _script(self) -> str:
        lines = ["set -euo pipefail", f"cd {shlex.quote(str(ROOT))}", *self.plan.exports, *self.plan.steps]
        for index, line in enumerate(self.plan.services):
            # A subshell, so a trailing comment on the README's line stays a comment.
            lines += [f"( {line}", f") > {shlex.quote(str(self.service_log(index)))} 2>&1 &"]
        return "\n".join([*lines, "wait", ""])

    def service_log(self, index: int) -> Path:
        return self.logs / f"service-{index}-{program(self.plan.services[index])}.log"

    def start(self) -> None:
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(["bash", str(self.script)], env=clean_env(), stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def output(self) -> str:
        parts = [self.log.read_text(errors="replace")]
        parts += [f"--- {path.name}\n{path.read_text(errors='replace')[-4000:]}" for path in sorted(self.logs.glob("service-*.log"))]
        return "\n".join(parts)

    def wait_for_log(self, index: int, pattern: str, timeout: float = 90) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.service_log(index).read_text(errors="replace") if self.service_log(index).exists() else ""
            if re.search(pattern, text):
                return text
            assert self.alive(), f"the deploy block stopped:\n{self.output()}"
            time.sleep(0.5)
        raise AssertionError(f"{pattern!r} not in {self.service_log(index).name} after {timeout} s:\n{self.output()}")

    def stop(self) -> None:
        """SIGTERM to the block's process group (gunicorn and Celery shut down warm), SIGKILL
        to what is left after 30 s."""
        if self.proc is None:
            return
        for sig, timeout in ((signal.SIGTERM, 30.0), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                return
            if self._group_gone(timeout):
                return

    def _group_gone(self, timeout: float) -> bool:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.proc.poll()  # reap the shell, so only live members keep the group
            try:
                os.killpg(self.proc.pid, 0)
            except ProcessLookupError:
                return True
            time.sleep(0.2)
        return False
