"""One access line per request under gunicorn as deployed (``gunicorn -c gunicorn.conf.py``):
Vigil's ``vigil.request`` JSON line (docs/operations.md "Logs"), not also gunicorn's own
access line, which ``gunicorn.conf.py``'s JSON ``logconfig_dict`` turned on and which carries
the query string (codes, tokens) that Vigil's line leaves out. ``--access-logfile`` still
gets gunicorn's line for an operator who asks for it by name."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.live_stack import gunicorn

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.live, pytest.mark.django_db(transaction=True)]


def _serve(tmp_path: Path, *args: str, **env: str) -> tuple[list[str], list[str], str]:
    """The log of a gunicorn that answered one request to each of three paths, then stopped;
    the paths; the secret value a query string carried."""
    marker, secret = secrets.token_hex(6), secrets.token_hex(8)
    paths = ["/healthz", f"/nothing-here-{marker}", "/jwks.json"]
    with gunicorn(tmp_path, None, *args, port=None, **env) as server:
        for path in paths:
            answer = requests.get(f"{server.base}{path}?code={secret}", headers={"Host": "localhost"}, timeout=10)
            assert answer.status_code in (200, 404)
    return server.log.read_text().splitlines(), paths, secret


def _lines_about(log: list[str], path: str) -> list[str]:
    """The access lines of ``path``: any line naming it but Django's own "Not Found" warning."""
    return [line for line in log if path in line and "django.request" not in line]


@pytest.mark.parametrize("log_format", ["json", "plain"])
def test_each_request_writes_one_json_access_line(tmp_path: Path, log_format: str) -> None:
    log, paths, secret = _serve(tmp_path, VIGIL_LOG_FORMAT=log_format)
    for path in paths:
        lines = _lines_about(log, path)
        assert len(lines) == 1, lines
        line: dict[str, Any] = json.loads(lines[0])
        assert line["message"] == "request" and line["path"] == path and line["method"] == "GET"
    assert not [line for line in log if "gunicorn.access" in line]
    assert secret not in "\n".join(log)  # no query string reached the log
    if log_format == "json":  # gunicorn's own lines stay JSON
        assert any(json.loads(line).get("logger") == "gunicorn.error" for line in log if line.startswith("{"))


def test_an_access_logfile_asked_for_by_name_still_gets_gunicorns_line(tmp_path: Path) -> None:
    access = tmp_path / "access.log"
    log, paths, _ = _serve(tmp_path, "--access-logfile", str(access))
    written = access.read_text()
    assert all(len(_lines_about(log, path)) == 1 for path in paths)  # Vigil's, on stderr
    assert all(f"GET {path}" in written for path in paths)  # and gunicorn's, where it was asked for
