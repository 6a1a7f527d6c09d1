"""The DeviceCheck client against the local stand-in of Apple's API on 127.0.0.1 (a real
HTTP server that checks the ES256 JWT and keeps per-device bits)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc import jwt
from joserfc.jwk import ECKey

from attestation.apple.devicecheck import (
    DeviceCheckClient,
    DeviceCheckUnavailable,
    DeviceTokenInvalid,
    TwoBits,
)
from attestation.testing.devicecheck_standin import DeviceCheckStandIn, device_of, mint_device_token

TEAM = "ABCDE12345"


def key_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


@pytest.fixture
def team_key() -> str:
    return key_pem()


@pytest.fixture
def stand_in(team_key: str) -> Iterator[DeviceCheckStandIn]:
    with DeviceCheckStandIn(team_id=TEAM, key_pem=team_key, key_id="DCKEY12345") as server:
        yield server


def client(stand_in: DeviceCheckStandIn, key: str, **overrides: Any) -> DeviceCheckClient:
    options: dict[str, Any] = {"team_id": TEAM, "key_id": "DCKEY12345", "signing_key_pem": key,
                               "base_url": stand_in.url, "timeout": 1.0}
    return DeviceCheckClient(**{**options, **overrides})


def test_query_before_any_update_is_bit_state_not_found(stand_in: DeviceCheckStandIn, team_key: str) -> None:
    assert client(stand_in, team_key).query_two_bits(mint_device_token("phone-1")) == TwoBits(found=False)


def test_update_then_query_from_another_token_of_the_same_device(stand_in: DeviceCheckStandIn, team_key: str) -> None:
    dc = client(stand_in, team_key)
    dc.update_two_bits(mint_device_token("phone-1"), bit0=True)
    bits = dc.query_two_bits(mint_device_token("phone-1"))  # a fresh token: the same physical device
    assert bits.found and bits.bit0 and not bits.bit1
    assert bits.last_update_time == dt.datetime.now(dt.UTC).strftime("%Y-%m")
    assert dc.query_two_bits(mint_device_token("phone-2")) == TwoBits(found=False)


def test_update_keeps_the_other_bit(stand_in: DeviceCheckStandIn, team_key: str) -> None:
    dc = client(stand_in, team_key)
    dc.update_two_bits(mint_device_token("p"), bit1=True)
    dc.update_two_bits(mint_device_token("p"), bit0=True)
    assert stand_in.state_of("p") == {"bit0": True, "bit1": True, "last_update_time": dt.datetime.now(
        dt.UTC).strftime("%Y-%m")}


def test_validate_device_token(stand_in: DeviceCheckStandIn, team_key: str) -> None:
    client(stand_in, team_key).validate_device_token(mint_device_token("p"))
    with pytest.raises(DeviceTokenInvalid):
        client(stand_in, team_key).validate_device_token("Zm9yZ2Vk")  # base64 of "forged"


def test_request_is_what_apple_documents(stand_in: DeviceCheckStandIn, team_key: str) -> None:
    now = dt.datetime(2026, 1, 3, 10, 0, tzinfo=dt.UTC)  # hours before the stand-in's clock
    token = mint_device_token("p")
    dc = client(stand_in, team_key, clock=lambda: now, transaction_id=lambda: "tx-1")
    with pytest.raises(DeviceCheckUnavailable):  # the stand-in refuses a JWT that is not fresh
        dc.query_two_bits(token)
    sent = stand_in.requests[-1]
    assert sent["path"] == "/v1/query_two_bits"
    assert json.loads(sent["body"]) == {"device_token": token, "transaction_id": "tx-1",
                                        "timestamp": int(now.timestamp() * 1000)}
    decoded = jwt.decode(sent["authorization"].removeprefix("Bearer "), ECKey.import_key(team_key),
                         algorithms=["ES256"])
    assert decoded.header["alg"] == "ES256" and decoded.header["kid"] == "DCKEY12345"
    assert decoded.claims == {"iss": TEAM, "iat": int(now.timestamp())}


@pytest.mark.parametrize("overrides", [{"signing_key_pem": key_pem()}, {"key_id": "OTHERKEY00"}, {"team_id": "ZZZZZ99999"}])
def test_a_jwt_apple_refuses_is_unavailable_not_the_devices_fault(
    stand_in: DeviceCheckStandIn, team_key: str, overrides: dict[str, Any]
) -> None:
    with pytest.raises(DeviceCheckUnavailable) as caught:
        client(stand_in, team_key, **overrides).query_two_bits(mint_device_token("p"))
    assert caught.value.status == 401


def test_an_unusable_signing_key_is_unavailable(stand_in: DeviceCheckStandIn, team_key: str) -> None:
    with pytest.raises(DeviceCheckUnavailable):
        client(stand_in, team_key, signing_key_pem="not a key").query_two_bits(mint_device_token("p"))
    assert stand_in.requests == []


@pytest.mark.parametrize("token", ["", "not base64!", "A" * 20000, "line\nbreak"])
def test_malformed_tokens_never_reach_apple(stand_in: DeviceCheckStandIn, team_key: str, token: str) -> None:
    with pytest.raises(DeviceTokenInvalid):
        client(stand_in, team_key).query_two_bits(token)
    assert stand_in.requests == []


def test_a_token_apple_refuses_is_invalid(stand_in: DeviceCheckStandIn, team_key: str) -> None:
    with pytest.raises(DeviceTokenInvalid) as caught:
        client(stand_in, team_key).query_two_bits("QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=")
    assert caught.value.status == 400


@pytest.mark.parametrize("how", [500, 503, 429, 403, "garbage", "huge", "redirect"])
def test_apple_failing_is_unavailable(stand_in: DeviceCheckStandIn, team_key: str, how: Any) -> None:
    stand_in.fail(how)
    with pytest.raises(DeviceCheckUnavailable):
        client(stand_in, team_key).query_two_bits(mint_device_token("p"))


def test_a_timeout_is_unavailable(stand_in: DeviceCheckStandIn, team_key: str) -> None:
    stand_in.fail("timeout", delay=1.5)
    with pytest.raises(DeviceCheckUnavailable, match="Timeout"):
        client(stand_in, team_key, timeout=0.3).query_two_bits(mint_device_token("p"))


def test_nothing_listening_is_unavailable(team_key: str) -> None:
    dc = DeviceCheckClient(team_id=TEAM, key_id="K", signing_key_pem=team_key, base_url="http://127.0.0.1:9",
                           timeout=0.5)
    with pytest.raises(DeviceCheckUnavailable, match="ConnectionError"):
        dc.query_two_bits(mint_device_token("p"))


def test_not_configured_is_unavailable(team_key: str) -> None:
    with pytest.raises(DeviceCheckUnavailable, match="not configured"):
        DeviceCheckClient(team_id=TEAM, key_id="", signing_key_pem=team_key, base_url="http://x").query_two_bits(
            mint_device_token("p"))


@pytest.mark.parametrize("body", [b"[]", b'{"bit0": "yes"}', b'{"bit0": true, "last_update_time": "12/2026"}'])
def test_query_answers_of_the_wrong_shape_are_unavailable(body: bytes) -> None:
    from attestation.apple.devicecheck import _two_bits

    with pytest.raises(DeviceCheckUnavailable):
        _two_bits(body)


def test_update_needs_a_bit(stand_in: DeviceCheckStandIn, team_key: str) -> None:
    with pytest.raises(ValueError):
        client(stand_in, team_key).update_two_bits(mint_device_token("p"))


def test_stand_in_tokens_map_to_their_device() -> None:
    assert device_of(mint_device_token("a")) == "a"
    assert mint_device_token("a") != mint_device_token("a")
    assert device_of("Zm9yZ2Vk") is None
