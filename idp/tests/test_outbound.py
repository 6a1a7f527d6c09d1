"""``core.outbound``: a URL a third party registered never leads Vigil to an internal address
(RFC 9101 §10.4.1, server-side request forgery), however its name resolves, before or after
the check; TLS is still verified for the name; the exchange has one deadline in all.

Real servers listen on 127.0.0.1 and ::1; the resolver is faked (the dependency), and any
connection to an address off this machine is refused and recorded by the fake network."""

from __future__ import annotations

import ipaddress
import time
from pathlib import Path
from typing import Any

import pytest

from core import outbound
from core.events import EventType
from core.models import SecurityEvent

from .outbound_support import FakeNetwork, answer, certificate, serving, tls_context, trickle

pytestmark = pytest.mark.django_db
NAME = "rp.example"
PRIVATE, METADATA, NOT_UNICAST = outbound.Refusal.PRIVATE, outbound.Refusal.CLOUD_METADATA, outbound.Refusal.NOT_UNICAST


@pytest.mark.parametrize(("address", "by_default", "when_allowed"), [
    ("127.0.0.1", PRIVATE, None), ("127.8.9.10", PRIVATE, None), ("::1", PRIVATE, None),
    ("10.1.2.3", PRIVATE, None), ("172.16.0.1", PRIVATE, None), ("192.168.1.1", PRIVATE, None),
    ("100.64.0.1", PRIVATE, None), ("169.254.1.1", PRIVATE, None), ("fc00::1", PRIVATE, None),
    ("fe80::1", PRIVATE, None), ("198.18.0.1", PRIVATE, None), ("::ffff:127.0.0.1", PRIVATE, None),
    ("::ffff:10.0.0.1", PRIVATE, None), ("2002:7f00:1::1", PRIVATE, None),
    ("169.254.169.254", METADATA, METADATA), ("fd00:ec2::254", METADATA, METADATA),
    ("100.100.100.200", METADATA, METADATA), ("::ffff:169.254.169.254", METADATA, METADATA),
    ("64:ff9b::a9fe:a9fe", METADATA, METADATA),
    # Whatever this Python's is_global says of them (3.11 before 3.11.10 calls them global): a
    # local-use NAT64 prefix (RFC 8215), which may translate to private IPv4 addresses (RFC 6052
    # section 3.1), SIIT's IPv4-translated form, the deprecated IPv4-compatible form, site-local.
    ("64:ff9b:1::a00:5", PRIVATE, None), ("64:ff9b:1::a9fe:a9fe", METADATA, METADATA),
    ("64:ff9b:1::808:808", PRIVATE, None), ("::ffff:0:a00:5", PRIVATE, None),
    ("::ffff:0:a9fe:a9fe", METADATA, METADATA), ("::7f00:1", PRIVATE, None), ("::a9fe:a9fe", METADATA, METADATA),
    ("fec0::1", PRIVATE, None),
    ("0.0.0.0", NOT_UNICAST, NOT_UNICAST), ("::", NOT_UNICAST, NOT_UNICAST), ("224.0.0.1", NOT_UNICAST, NOT_UNICAST),
    ("ff02::1", NOT_UNICAST, NOT_UNICAST), ("255.255.255.255", NOT_UNICAST, NOT_UNICAST),
    ("240.0.0.1", NOT_UNICAST, NOT_UNICAST),
    ("8.8.8.8", None, None), ("::ffff:8.8.8.8", None, None), ("2606:4700:4700::1111", None, None),
])
def test_which_addresses_are_refused(address: str, by_default: Any, when_allowed: Any) -> None:
    ip = ipaddress.ip_address(address)
    assert outbound.refusal(ip, allow_private=False) == by_default
    assert outbound.refusal(ip, allow_private=True) == when_allowed


def _get(url: str, **kwargs: Any) -> outbound.Reply:
    return outbound.request("GET", url, purpose=outbound.Purpose.REQUEST_URI, deadline=kwargs.pop("deadline", 2.0),
                            max_bytes=kwargs.pop("max_bytes", 1000), **kwargs)


@pytest.mark.parametrize("address", ["127.0.0.1", "::1"])
def test_a_name_for_a_loopback_server_is_refused_and_the_server_never_reached(
    address: str, network: FakeNetwork, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    cert, key = certificate(tmp_path, [NAME])
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
    with serving(answer(), host=address, tls=tls_context(cert, key)) as server:
        network.answers[NAME] = [[address]]
        with pytest.raises(outbound.DestinationRefused):
            _get(f"https://{NAME}:{server.port}/object", event_fields={"client_id": "rp"})
    assert server.connections == 0 and network.off_machine == []
    event = SecurityEvent.objects.get(event_type=EventType.OUTBOUND_DESTINATION_REFUSED)
    assert (event.outcome, event.reason, event.client_id) == ("denied", "private_address", "rp")
    assert event.details == {"purpose": "request_uri", "host": NAME, "address": address}


@pytest.mark.parametrize(("address", "reason"), [
    ("10.0.0.7", "private_address"), ("169.254.169.254", "cloud_metadata"), ("::ffff:169.254.169.254", "cloud_metadata"),
])
def test_a_name_for_an_internal_address_is_refused_without_a_connection(
    address: str, reason: str, network: FakeNetwork,
) -> None:
    network.answers[NAME] = [[address]]
    with pytest.raises(outbound.DestinationRefused):
        _get(f"https://{NAME}/latest/meta-data/")
    assert network.off_machine == []  # not even attempted
    assert SecurityEvent.objects.get(event_type=EventType.OUTBOUND_DESTINATION_REFUSED).reason == reason


@pytest.mark.parametrize("address", ["127.0.0.1", "::1"])
@pytest.mark.usefixtures("allow_private_outbound")
def test_loopback_is_reached_when_the_setting_allows_it_and_tls_is_for_the_name(
    address: str, network: FakeNetwork, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    cert, key = certificate(tmp_path, [NAME])  # no IP address: verified for the name or not at all
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
    with serving(answer(body=b'{"ok": 1}'), host=address, tls=tls_context(cert, key)) as server:
        network.answers[NAME] = [[address]]
        reply = _get(f"https://{NAME}:{server.port}/object")
    assert (reply.status, reply.media_type, reply.body, reply.oversize) == (200, "application/json", b'{"ok": 1}', False)
    assert server.connections == 1 and server.server_names == [NAME]  # SNI: the name, not the address
    assert not SecurityEvent.objects.filter(event_type=EventType.OUTBOUND_DESTINATION_REFUSED).exists()


@pytest.mark.usefixtures("allow_private_outbound")
def test_a_certificate_for_another_name_is_refused_though_the_address_is_the_vetted_one(
    network: FakeNetwork, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    cert, key = certificate(tmp_path, ["other.example"], ["127.0.0.1"])
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
    with serving(answer(), tls=tls_context(cert, key)) as server:
        network.answers[NAME] = [["127.0.0.1"]]
        with pytest.raises(outbound.Unreachable, match="SSLError"):
            _get(f"https://{NAME}:{server.port}/object")


@pytest.mark.usefixtures("allow_private_outbound")
def test_cloud_metadata_stays_refused_when_private_addresses_are_allowed(network: FakeNetwork) -> None:
    network.answers[NAME] = [["169.254.169.254"]]
    with pytest.raises(outbound.DestinationRefused, match="cloud_metadata"):
        _get(f"http://{NAME}/latest/meta-data/")
    assert network.off_machine == []


def test_a_name_rebound_to_loopback_after_the_check_is_not_reached(network: FakeNetwork) -> None:
    """DNS rebinding: public for the check, 127.0.0.1 for any later lookup. One lookup is
    made, the connection goes to the address it vetted (refused here: the fake network
    reaches nothing off this machine), and the loopback server never hears of it."""
    with serving(answer()) as server:
        network.answers[NAME] = [["93.184.215.14"], ["127.0.0.1"]]
        port = server.port
        with pytest.raises(outbound.Unreachable):
            _get(f"http://{NAME}:{port}/object")
    assert network.lookups == [NAME]
    assert network.off_machine == [("93.184.215.14", port)] and server.connections == 0


def test_a_name_with_a_public_and_a_private_address_is_refused_whole(network: FakeNetwork) -> None:
    with serving(answer()) as server:
        network.answers[NAME] = [["93.184.215.14", "127.0.0.1"]]
        with pytest.raises(outbound.DestinationRefused):
            _get(f"http://{NAME}:{server.port}/object")
    assert network.off_machine == [] and server.connections == 0


def test_an_address_literal_is_judged_like_a_name(network: FakeNetwork) -> None:
    with serving(answer()) as server:
        network.answers["127.0.0.1"] = [["127.0.0.1"]]
        with pytest.raises(outbound.DestinationRefused):
            _get(f"http://127.0.0.1:{server.port}/object")
    assert server.connections == 0


@pytest.mark.usefixtures("allow_private_outbound")
def test_no_proxy_from_the_environment_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """A proxy would connect in Vigil's place, to an address Vigil never vetted."""
    with serving(answer(body=b"direct")) as server, serving(answer(body=b"proxied")) as proxy:
        for variable in ("HTTP_PROXY", "http_proxy", "ALL_PROXY"):
            monkeypatch.setenv(variable, f"http://127.0.0.1:{proxy.port}")
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        assert _get(f"http://127.0.0.1:{server.port}/object").body == b"direct"
    assert proxy.connections == 0


@pytest.mark.usefixtures("allow_private_outbound")
def test_a_body_past_the_limit_is_cut_and_said_to_be(monkeypatch: pytest.MonkeyPatch) -> None:
    with serving(answer(body=b"x" * 5000)) as server:
        reply = _get(f"http://127.0.0.1:{server.port}/object", max_bytes=100)
    assert reply.body == b"x" * 100 and reply.oversize


@pytest.mark.usefixtures("allow_private_outbound")
@pytest.mark.parametrize("stage", ["headers", "body"])
def test_a_trickling_sender_is_cut_off_at_the_deadline(stage: str) -> None:
    with serving(trickle(stage)) as server:
        started = time.monotonic()
        with pytest.raises(outbound.TooSlow):
            _get(f"http://127.0.0.1:{server.port}/object", deadline=0.6)
        assert time.monotonic() - started < 1.1


def test_a_name_that_resolves_slowly_is_given_up_at_the_deadline(
    network: FakeNetwork, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The lookup is part of the exchange: a host whose DNS answers slowly (its owner runs
    it) holds no worker past the deadline either; nothing is connected to."""
    looked_up = network.resolve

    def slow(host: str, port: int) -> list[tuple[Any, ...]]:
        time.sleep(2.5)
        return looked_up(host, port)

    monkeypatch.setattr(outbound, "resolve", slow)
    network.answers[NAME] = [["93.184.215.14"]]
    started = time.monotonic()
    with pytest.raises(outbound.TooSlow):
        _get(f"https://{NAME}/object", deadline=0.5)
    assert time.monotonic() - started < 1.2
    assert network.off_machine == []


def test_the_deploy_check_warns_while_private_addresses_are_allowed(settings: Any) -> None:
    from idp.checks import check_outbound

    assert check_outbound() == []
    settings.IDP_OUTBOUND_ALLOW_PRIVATE_ADDRESSES = "1"  # from the environment: a string
    assert [warning.id for warning in check_outbound()] == ["vigil.W020"]
