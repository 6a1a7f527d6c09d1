"""Cookie names under an https issuer take ``__Host-`` (RFC 6265bis §4.1.3.2; ``core.cookies``,
docs/operations.md "Cookies"): a browser then accepts each cookie only from this host, over
https, Secure, with Path=/ and no Domain, so a sibling subdomain cannot plant a session
(cookie tossing, session fixation). Under an http issuer (development) the names stay bare.

The names are computed when ``vigil/settings.py`` is imported, from the environment: the
settings tests import it in a new process (as ``test_client_address`` does); the response
tests run the settings module under an https environment and take its cookie settings,
then send requests as the README's TLS proxy does (``X-Forwarded-Proto: https`` with
``DJANGO_BEHIND_TLS_PROXY=1``) and read the ``Set-Cookie`` lines as they go on the wire.
"""

from __future__ import annotations

import json
import os
import re
import runpy
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.core.checks import run_checks
from django.test import Client as HttpClient
from django.urls import reverse

from .conftest import PASSWORD, authorize_params
from .jar_support import authorize_url, push

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
HTTPS = {"IDP_ISSUER": "https://id.example.com", "DJANGO_BEHIND_TLS_PROXY": "1"}
VARIABLE_OF = {"session": "VIGIL_SESSION_COOKIE_NAME", "csrf": "VIGIL_CSRF_COOKIE_NAME",
               "language": "VIGIL_LANGUAGE_COOKIE_NAME", "time_zone": "VIGIL_TIME_ZONE_COOKIE_NAME",
               "messages": "VIGIL_MESSAGES_COOKIE_NAME", "known_device": "ACCOUNTS_KNOWN_DEVICE_COOKIE"}
NAME_VARIABLES = tuple(VARIABLE_OF.values())
COOKIE_SETTINGS = ("VIGIL_COOKIE_NAME_PREFIX", "SESSION_COOKIE_NAME", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_NAME",
                   "CSRF_COOKIE_SECURE", "LANGUAGE_COOKIE_NAME", "LANGUAGE_COOKIE_SECURE",
                   "VIGIL_TIME_ZONE_COOKIE_NAME", "VIGIL_MESSAGES_COOKIE_NAME", "SECURE_PROXY_SSL_HEADER")
UPGRADE_NOTE = "### Upgrading: cookie names take `__Host-`"
BARE = {"session": "vigil_session", "csrf": "vigil_csrftoken", "language": "vigil_language", "time_zone": "vigil_tz",
        "messages": "vigil_messages", "known_device": "vigil_device", "par": "vigil_session_par"}
PRINT_NAMES = (
    "import json; from django.conf import settings as s; from accounts.app_settings import app_settings as a; "
    "from idp.flows.authorize_request import browser_cookie_name as par; "
    "print(json.dumps({'session': s.SESSION_COOKIE_NAME, 'csrf': s.CSRF_COOKIE_NAME, "
    "'language': s.LANGUAGE_COOKIE_NAME, 'time_zone': s.VIGIL_TIME_ZONE_COOKIE_NAME, "
    "'messages': s.VIGIL_MESSAGES_COOKIE_NAME, 'known_device': a.KNOWN_DEVICE_COOKIE, 'par': par()}))"
)


def _environment(env: dict[str, str]) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if k not in NAME_VARIABLES and k != "DJANGO_BEHIND_TLS_PROXY"}
    return {**clean, "VIGIL_TESTING": "1", "DJANGO_SETTINGS_MODULE": "vigil.settings", **env}


def _names_in_a_new_process(**env: str) -> dict[str, str]:
    done = subprocess.run([sys.executable, "-c", f"import django; django.setup(); {PRINT_NAMES}"], cwd=ROOT,
                          env=_environment(env), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def _check_in_a_new_process(**env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=_environment(env),
                          capture_output=True, text=True, timeout=120)


# ---- the names, as the settings module computes them


def test_an_https_issuer_gives_every_cookie_the_host_prefix() -> None:
    assert _names_in_a_new_process(**HTTPS) == {what: f"__Host-{name}" for what, name in BARE.items()}


def test_an_http_issuer_keeps_the_names_bare() -> None:
    """Development (the README's embedded defaults on http://localhost): browsers refuse a
    __Host- cookie that is not Secure, so there the names carry no prefix."""
    assert _names_in_a_new_process(IDP_ISSUER="http://localhost:8000") == BARE


def _old_names_from_the_upgrade_note() -> dict[str, str]:
    """The variables docs/operations.md's upgrade note exports to keep the old names."""
    text = (ROOT / "docs" / "operations.md").read_text()
    block = re.search(r"```sh\n(.*?)```", text[text.index(UPGRADE_NOTE):], re.S)
    assert block is not None, f"no sh block under {UPGRADE_NOTE!r}"
    words = shlex.split(block.group(1).replace("\\\n", " "))
    return dict(word.split("=", 1) for word in words if "=" in word)


def test_the_upgrade_notes_old_names_are_kept_as_set() -> None:
    """Names set in the environment are taken as written, prefix or none: the upgrade note's
    way to keep every browser signed in across the deploy."""
    old = _old_names_from_the_upgrade_note()
    assert set(old) == set(NAME_VARIABLES)
    names = _names_in_a_new_process(**HTTPS, **old)
    expected = {what: old[variable] for what, variable in VARIABLE_OF.items()}
    assert names == {**expected, "par": f"{expected['session']}_par"}
    assert names["session"] == "vigil_session" and names["known_device"] == "vigil_device"


def test_an_https_deployment_passes_its_checks_and_a_host_name_under_http_does_not() -> None:
    fine = _check_in_a_new_process(**HTTPS)
    assert fine.returncode == 0 and "vigil.E03" not in fine.stderr + fine.stdout, fine.stderr
    refused = _check_in_a_new_process(IDP_ISSUER="http://localhost:8000", VIGIL_SESSION_COOKIE_NAME="__Host-s")
    assert refused.returncode != 0
    assert "vigil.E030" in refused.stderr and "VIGIL_SESSION_COOKIE_NAME" in refused.stderr


# ---- what goes on the wire over https


@pytest.fixture
def over_https(settings: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The cookie settings ``vigil/settings.py`` computes under the README's https environment."""
    for variable in NAME_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    for variable, value in HTTPS.items():
        monkeypatch.setenv(variable, value)
    computed = runpy.run_path(str(ROOT / "vigil" / "settings.py"))
    for name in COOKIE_SETTINGS:
        setattr(settings, name, computed[name])
    return {name: computed[name] for name in COOKIE_SETTINGS}


def _set_cookie(response: Any, name: str) -> list[str]:
    """The attributes of ``name``'s Set-Cookie line as sent (lowercased), asserting it is one.
    The lines are made as Django's WSGI handler makes them (``django.core.handlers.wsgi``)."""
    lines = [morsel.output(header="Set-Cookie:") for morsel in response.cookies.values()]
    found = [line for line in lines if line.startswith(f"Set-Cookie: {name}=")]
    assert len(found) == 1, (name, [line for line in lines if line.startswith("Set-Cookie")])
    return [attribute.strip().lower() for attribute in found[0].split(";")[1:]]


def _assert_host_cookie(response: Any, name: str) -> None:
    """RFC 6265bis §4.1.3.2: a __Host- cookie is Secure, Path=/, without Domain."""
    assert name.startswith("__Host-")
    attributes = _set_cookie(response, name)
    assert "secure" in attributes and "path=/" in attributes, attributes
    assert not [attribute for attribute in attributes if attribute.startswith("domain")], attributes


@pytest.fixture
def https_browser(over_https: dict[str, Any]) -> HttpClient:
    return HttpClient(headers={"X-Forwarded-Proto": "https"})


def test_every_cookie_of_a_sign_in_over_https_is_a_host_cookie(https_browser, over_https, user) -> None:
    login = https_browser.get(reverse("accounts:login"))
    assert login.wsgi_request.is_secure()  # through the proxy header, as behind the README's proxy
    _assert_host_cookie(login, "__Host-vigil_csrftoken")
    signed_in = https_browser.post(reverse("accounts:login"), {"username": "alice", "password": PASSWORD})
    assert signed_in.status_code == 302
    _assert_host_cookie(signed_in, "__Host-vigil_session")
    _assert_host_cookie(signed_in, "__Host-vigil_device")
    chosen = https_browser.post(reverse("set_language"), {"language": "es", "next": "/accounts/"})
    _assert_host_cookie(chosen, "__Host-vigil_language")
    flashed = https_browser.post(reverse("accounts:recovery_regenerate"), {"form_token": "stale"})  # refused
    _assert_host_cookie(flashed, "__Host-vigil_messages")
    shown = https_browser.get(reverse("accounts:profile"))
    assert '<p class="error" role="status">' in shown.content.decode()  # the message, read from that cookie
    assert "max-age=0" in _set_cookie(shown, "__Host-vigil_messages")  # read once: deleted, Secure kept
    assert "secure" in _set_cookie(shown, "__Host-vigil_messages")


def test_no_script_can_read_the_csrf_cookie(https_browser, over_https) -> None:
    """HttpOnly, like the session cookie: the pages' scripts send the form's token
    (passkeys.js; the passkey browser tests run that fetch), never the cookie's."""
    login = https_browser.get(reverse("accounts:login"))
    assert "httponly" in _set_cookie(login, "__Host-vigil_csrftoken")


def test_signing_out_over_https_deletes_the_session_cookie_with_its_prefix_rules(https_browser, over_https, user):
    """A deletion of a __Host- cookie without Secure would be ignored by browsers."""
    https_browser.post(reverse("accounts:login"), {"username": "alice", "password": PASSWORD})
    out = https_browser.post(reverse("accounts:logout"))
    attributes = _set_cookie(out, "__Host-vigil_session")
    assert "max-age=0" in attributes and "secure" in attributes and "path=/" in attributes
    assert https_browser.cookies["__Host-vigil_session"].value == ""


def test_the_pushed_request_binding_cookie_over_https_is_a_host_cookie(https_browser, over_https, mobile_client, pkce):
    """Named after the session cookie: ``__Host-vigil_session_par``, valid as such."""
    pushed = push(authorize_params(mobile_client.client.client_id, pkce))
    assert pushed.status_code == 201, pushed.content
    url = authorize_url(mobile_client.client.client_id, request_uri=pushed.json()["request_uri"])
    taken = https_browser.get(url)
    assert taken.status_code == 302 and reverse("accounts:login") in taken["Location"]
    _assert_host_cookie(taken, "__Host-vigil_session_par")


def test_the_time_zone_cookie_name_reaches_the_page_script_and_is_read(https_browser, over_https, user) -> None:
    """pages.js writes the zone under the name the page gives it; the server reads that name."""
    https_browser.post(reverse("accounts:login"), {"username": "alice", "password": PASSWORD})
    page = https_browser.get(reverse("accounts:profile")).content.decode()
    assert 'data-time-zone-cookie="__Host-vigil_tz"' in page and 'data-time-zone="UTC"' in page
    https_browser.cookies["__Host-vigil_tz"] = "Asia/Tokyo"
    assert 'data-time-zone="Asia/Tokyo"' in https_browser.get(reverse("accounts:profile")).content.decode()
    https_browser.cookies["vigil_tz"] = "Europe/Paris"  # the bare name is not ours under https
    del https_browser.cookies["__Host-vigil_tz"]
    assert 'data-time-zone="UTC"' in https_browser.get(reverse("accounts:profile")).content.decode()


# ---- the system checks (vigil.E030, vigil.E031)


def _cookie_problems() -> list[tuple[str, str]]:
    return [(str(problem.id), problem.msg) for problem in run_checks() if str(problem.id).startswith("vigil.E03")]


def test_the_defaults_pass_the_checks_over_http() -> None:
    assert _cookie_problems() == []  # the test settings: an http issuer, bare names


def test_the_defaults_pass_the_checks_over_https(over_https: dict[str, Any]) -> None:
    assert over_https["SESSION_COOKIE_NAME"] == "__Host-vigil_session" and over_https["SESSION_COOKIE_SECURE"]
    assert _cookie_problems() == []


def test_a_prefixed_name_on_a_cookie_that_is_not_secure_is_refused(settings: Any) -> None:
    settings.SESSION_COOKIE_NAME = "__Host-vigil_session"  # with an http issuer: not Secure
    settings.ACCOUNTS_KNOWN_DEVICE_COOKIE = "__secure-device"  # browsers match prefixes in any case
    problems = _cookie_problems()
    assert [problem_id for problem_id, _ in problems] == ["vigil.E030"] * 3, problems
    text = " ".join(message for _, message in problems)
    assert "'__Host-vigil_session'" in text and "'__Host-vigil_session_par'" in text and "'__secure-device'" in text


def test_a_host_name_with_a_domain_or_a_path_is_refused(over_https: dict[str, Any], settings: Any) -> None:
    settings.SESSION_COOKIE_DOMAIN = ".example.com"  # shared with every subdomain: not host-only
    settings.CSRF_COOKIE_PATH = "/accounts/"
    problems = _cookie_problems()
    assert [problem_id for problem_id, _ in problems] == ["vigil.E031"] * 3, problems  # messages share the domain
    text = " ".join(message for _, message in problems)
    assert "'__Host-vigil_session'" in text and "'__Host-vigil_csrftoken'" in text
    assert "'__Host-vigil_messages'" in text and "_par" not in text  # the binding cookie is host-only still


def test_a_secure_prefix_may_have_a_domain(over_https: dict[str, Any], settings: Any) -> None:
    settings.SESSION_COOKIE_DOMAIN = ".example.com"
    settings.SESSION_COOKIE_NAME = "__Secure-vigil_session"
    settings.VIGIL_MESSAGES_COOKIE_NAME = "vigil_messages"
    assert _cookie_problems() == []
