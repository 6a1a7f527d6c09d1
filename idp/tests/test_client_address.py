"""The client address behind trusted proxies (core/client_address.py, docs/operations.md "Proxies")."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.core.checks import run_checks
from django.test import RequestFactory

from core.client_address import parse_address, resolve
from core.events import client_ip

ROOT = Path(__file__).resolve().parents[2]
NGINX = "10.0.0.5"


def request(peer: str, forwarded: str | None = None) -> Any:
    headers: dict[str, Any] = {"HTTP_X_FORWARDED_FOR": forwarded} if forwarded is not None else {}
    return RequestFactory().get("/", REMOTE_ADDR=peer, **headers)


def test_without_trusted_proxies_the_header_is_ignored(settings: Any) -> None:
    settings.VIGIL_TRUSTED_PROXIES = []
    assert client_ip(request(NGINX, "31.39.1.1")) == NGINX


def test_the_entry_a_trusted_proxy_wrote_is_the_client(settings: Any) -> None:
    settings.VIGIL_TRUSTED_PROXIES = ["10.0.0.0/24"]
    assert client_ip(request(NGINX, "31.39.1.1")) == "31.39.1.1"


def test_entries_left_of_the_client_are_the_clients_own_and_ignored(settings: Any) -> None:
    """A client that sends ``X-Forwarded-For: 1.2.3.4`` itself: nginx appends the real peer."""
    settings.VIGIL_TRUSTED_PROXIES = [NGINX]
    assert client_ip(request(NGINX, "1.2.3.4, 31.39.1.1")) == "31.39.1.1"


def test_a_forwarded_header_from_an_untrusted_peer_is_ignored(settings: Any) -> None:
    settings.VIGIL_TRUSTED_PROXIES = [NGINX]
    assert client_ip(request("203.0.113.9", "31.39.1.1, 10.0.0.5")) == "203.0.113.9"


def test_several_trusted_hops_are_skipped(settings: Any) -> None:
    """CDN (192.0.2.10) -> nginx (10.0.0.5) -> Vigil."""
    settings.VIGIL_TRUSTED_PROXIES = ["10.0.0.0/8", "192.0.2.0/24"]
    assert client_ip(request(NGINX, "6.6.6.6, 31.39.1.1, 192.0.2.10")) == "31.39.1.1"


def test_hop_count_trusts_that_many_proxies(settings: Any) -> None:
    settings.VIGIL_TRUSTED_PROXIES = []
    settings.VIGIL_TRUSTED_PROXY_HOPS = 2
    assert client_ip(request(NGINX, "6.6.6.6, 31.39.1.1, 192.0.2.10")) == "31.39.1.1"
    settings.VIGIL_TRUSTED_PROXY_HOPS = 1
    assert client_ip(request(NGINX, "6.6.6.6, 31.39.1.1, 192.0.2.10")) == "192.0.2.10"


def test_when_every_hop_is_trusted_the_leftmost_is_returned(settings: Any) -> None:
    settings.VIGIL_TRUSTED_PROXIES = ["10.0.0.0/8"]
    assert client_ip(request(NGINX, "10.1.1.1")) == "10.1.1.1"
    assert client_ip(request(NGINX)) == NGINX


@pytest.mark.parametrize("junk", ["unknown", "not an address", "999.1.1.1", "_hidden", '"', ""])
def test_an_unusable_client_entry_stops_at_the_last_trusted_proxy(settings: Any, junk: str) -> None:
    settings.VIGIL_TRUSTED_PROXIES = [NGINX]
    assert client_ip(request(NGINX, f"31.39.1.1, {junk}")) == (NGINX if junk.strip() else "31.39.1.1")


def test_ipv6_ports_and_mapped_addresses(settings: Any) -> None:
    settings.VIGIL_TRUSTED_PROXIES = ["2001:db8::/32", "10.0.0.5"]
    assert client_ip(request("2001:db8::1", "[2001:4860::8888]:4711")) == "2001:4860::8888"
    assert client_ip(request("::ffff:10.0.0.5", "31.39.1.1:443")) == "31.39.1.1"
    assert parse_address("::ffff:31.39.1.1") is not None and str(parse_address("::ffff:31.39.1.1")) == "31.39.1.1"


def test_no_usable_peer_gives_no_address() -> None:
    assert resolve("", "31.39.1.1", (), 5) is None
    assert resolve("garbage", "", (), 0) is None


@pytest.mark.parametrize("hops", ["two", "-1", "²", "1.5"])
def test_invalid_settings_are_reported_by_system_checks(settings: Any, hops: str) -> None:
    settings.VIGIL_TRUSTED_PROXIES = ["10.0.0.5", "nginx.internal"]
    settings.VIGIL_TRUSTED_PROXY_HOPS = hops  # "²" is a digit to str.isdigit, not to int()
    ids = [problem.id for problem in run_checks()]
    assert ids.count("vigil.E010") == 2
    # ... and the valid entry still works; the invalid one trusts nothing
    assert client_ip(request(NGINX, "31.39.1.1")) == "31.39.1.1"
    assert client_ip(request("192.0.2.1", "31.39.1.1")) == "192.0.2.1"


def test_hops_without_addresses_warn(settings: Any) -> None:
    settings.VIGIL_TRUSTED_PROXIES = []
    settings.VIGIL_TRUSTED_PROXY_HOPS = "1"
    assert "vigil.W010" in [problem.id for problem in run_checks()]
    settings.VIGIL_TRUSTED_PROXY_HOPS = "0"
    assert "vigil.W010" not in [problem.id for problem in run_checks()]
    settings.VIGIL_TRUSTED_PROXY_HOPS = ""  # an empty environment variable is the default
    assert not {"vigil.W010", "vigil.E010"} & {problem.id for problem in run_checks()}


def test_behind_a_tls_proxy_with_no_proxy_trusted_the_deploy_check_warns(settings: Any) -> None:
    """Every request would seem to come from the proxy: one address for the risk engine, one
    bucket per limit for everybody (``vigil.W011``, a deploy check)."""
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.VIGIL_TRUSTED_PROXIES, settings.VIGIL_TRUSTED_PROXY_HOPS = [], "0"
    assert "vigil.W011" in [problem.id for problem in run_checks(include_deployment_checks=True)]
    assert "vigil.W011" not in [problem.id for problem in run_checks()]  # only check --deploy
    for trusted, hops in ((["127.0.0.1"], "0"), ([], "1")):
        settings.VIGIL_TRUSTED_PROXIES, settings.VIGIL_TRUSTED_PROXY_HOPS = trusted, hops
        assert "vigil.W011" not in [problem.id for problem in run_checks(include_deployment_checks=True)]
    settings.VIGIL_TRUSTED_PROXIES, settings.VIGIL_TRUSTED_PROXY_HOPS = [], "0"
    settings.SECURE_PROXY_SSL_HEADER = None  # no proxy said: the peer is the client
    assert "vigil.W011" not in [problem.id for problem in run_checks(include_deployment_checks=True)]


def _settings_in_subprocess(env: dict[str, str], code: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_TRUST")}
    return subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); from django.conf import settings; {code}"],
        cwd=ROOT, env={**clean, "DJANGO_SETTINGS_MODULE": "vigil.settings", **env},
        capture_output=True, text=True, timeout=60,
    )


def test_trusted_proxies_are_read_from_the_environment() -> None:
    """Reproduction (issue 12): the old trust switch was never read from the environment."""
    result = _settings_in_subprocess(
        {"VIGIL_TRUSTED_PROXIES": "127.0.0.1, 10.0.0.0/8", "VIGIL_TRUSTED_PROXY_HOPS": "0"},
        "from django.test import RequestFactory; from core.events import client_ip; "
        "print(client_ip(RequestFactory().get('/', REMOTE_ADDR='10.2.3.4', HTTP_X_FORWARDED_FOR='31.39.1.1')))",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "31.39.1.1"


def test_the_removed_setting_refuses_to_start() -> None:
    result = _settings_in_subprocess({"VIGIL_TRUST_X_FORWARDED_FOR": "1"}, "print('started')")
    assert result.returncode != 0 and "started" not in result.stdout
    assert "VIGIL_TRUSTED_PROXIES" in result.stderr and "ImproperlyConfigured" in result.stderr


def test_a_settings_change_between_two_identical_requests_is_seen_at_once(settings: Any) -> None:
    """``resolve`` keeps answers per input: the trusted proxies and the hop count are part of
    its key, so the same peer and header answer anew when either changes (a remembered answer
    would keep believing a proxy no longer trusted)."""
    same = ("10.0.0.5", "31.39.1.1, 10.0.0.7")
    settings.VIGIL_TRUSTED_PROXIES, settings.VIGIL_TRUSTED_PROXY_HOPS = ["10.0.0.0/24"], 0
    assert client_ip(request(*same)) == "31.39.1.1"
    settings.VIGIL_TRUSTED_PROXIES = ["10.0.0.5"]
    assert client_ip(request(*same)) == "10.0.0.7"
    settings.VIGIL_TRUSTED_PROXIES = []
    assert client_ip(request(*same)) == "10.0.0.5"
    settings.VIGIL_TRUSTED_PROXY_HOPS = 2
    assert client_ip(request(*same)) == "31.39.1.1"
    settings.VIGIL_TRUSTED_PROXY_HOPS = 0
    assert client_ip(request(*same)) == "10.0.0.5"


def test_remembered_answers_are_bounded() -> None:
    for n in range(3000):
        resolve("10.0.0.5", f"198.51.100.{n % 250}, 203.0.113.{n // 250}", (), 0)
    info = resolve.cache_info()
    assert info.maxsize is not None and info.currsize <= info.maxsize <= 4096
