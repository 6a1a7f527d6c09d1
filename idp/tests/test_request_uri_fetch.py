"""Request objects by reference (OIDC Core §6.2, RFC 9101 §5.2): fetched only from an https
URL the client registered, from a real TLS server on 127.0.0.1 (its self-signed certificate
trusted through REQUESTS_CA_BUNDLE), with every failure an ``invalid_request_uri`` and
nothing issued."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from clients.flows.registration import ClientRegistrationError, register_client
from core.models import SecurityEvent
from sessions.models import AuthorizationCode

from .conftest import SERVICE_REDIRECT, query_of
from .jar_support import authorize_url, keyed_client, request_object, request_params, unsigned

#: The object server is on 127.0.0.1, which core.outbound refuses unless told otherwise.
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("allow_private_outbound")]
JAR = "application/oauth-authz-req+jwt"


@dataclass
class ObjectServer:
    base: str
    routes: dict[str, tuple[int, str, bytes]] = field(default_factory=dict)
    seen: list[str] = field(default_factory=list)


def _certificate(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.fixture
def object_server(tmp_path: Path, monkeypatch: Any) -> Iterator[ObjectServer]:
    cert, key = _certificate(tmp_path)
    state = ObjectServer(base="")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            state.seen.append(self.path)
            status, media_type, body = state.routes.get(self.path, (404, "text/plain", b"none"))
            self.send_response(status)
            self.send_header("Content-Type", media_type)
            if status == 302:
                self.send_header("Location", "/object")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    state.base = f"https://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def by_reference(object_server: ObjectServer, db: Any) -> tuple[Any, Any, list[str]]:
    urls = [f"{object_server.base}/{name}" for name in ("object", "missing", "html", "huge", "moved", "unsigned")]
    client, key = keyed_client("by-reference", request_uris=urls)
    return client, key, urls


def _answer(browser: Any, client_id: str, request_uri: str) -> dict[str, str]:
    response = browser.get(authorize_url(client_id, request_uri=request_uri, redirect_uri=SERVICE_REDIRECT))
    assert response.status_code == 302 and response["Location"].startswith(SERVICE_REDIRECT), response.content[:300]
    return query_of(response["Location"])


def test_a_registered_url_is_fetched_and_its_object_is_the_request(browser, by_reference, object_server, pkce):
    client, key, urls = by_reference
    params = request_params(client.client_id, pkce)
    object_server.routes["/object"] = (200, JAR, request_object(client.client_id, key, params).encode())
    query = _answer(browser, client.client_id, urls[0])
    assert query["state"] == params["state"] and "code" in query
    assert object_server.seen == ["/object"]


def test_an_unregistered_url_is_refused_unfetched(browser, by_reference, object_server, pkce):
    client, key, _ = by_reference
    object_server.routes["/other"] = (200, JAR, request_object(client.client_id, key,
                                                               request_params(client.client_id, pkce)).encode())
    for uri in (f"{object_server.base}/other", f"{object_server.base}/object?x=1", "http://127.0.0.1:1/object"):
        assert _answer(browser, client.client_id, uri)["error"] == "invalid_request_uri"
    assert object_server.seen == [] and not AuthorizationCode.objects.exists()


def test_registered_urls_that_do_not_give_a_request_object_are_refused(browser, by_reference, object_server, pkce):
    client, key, urls = by_reference
    signed = request_object(client.client_id, key, request_params(client.client_id, pkce)).encode()
    object_server.routes.update({
        "/html": (200, "text/html", signed), "/huge": (200, JAR, b"e" * 20000), "/moved": (302, JAR, b""),
        "/unsigned": (200, JAR, unsigned({"iss": client.client_id, "client_id": client.client_id}).encode()),
    })
    for uri, error in [(urls[1], "invalid_request_uri"), (urls[2], "invalid_request_uri"),
                       (urls[3], "invalid_request_uri"), (urls[4], "invalid_request_uri"),
                       (urls[5], "invalid_request_object")]:
        assert _answer(browser, client.client_id, uri)["error"] == error, uri
    assert "/object" not in object_server.seen  # the redirect was not followed
    assert not AuthorizationCode.objects.exists()
    assert SecurityEvent.objects.filter(event_type="oauth.request_uri_refused", reason="fetch_failed").count() == 4


def test_a_client_that_must_push_is_not_fetched_for(browser, object_server, pkce, db):
    url = f"{object_server.base}/object"
    client, key = keyed_client("must-push", request_uris=[url], require_par=True)
    assert _answer(browser, client.client_id, url)["error"] == "invalid_request"
    assert object_server.seen == []


@pytest.mark.parametrize("uri", ["http://rp.example/request.jwt", "https://rp.example/r#frag", "https://a b"])
def test_only_https_request_uris_register(uri, db):
    with pytest.raises(ClientRegistrationError, match="request URI"):
        register_client(name="X", public=True, redirect_uris=["com.example.app:/cb"], request_uris=[uri])


def test_discovery_says_request_uris_must_be_registered(client):
    served = client.get("/.well-known/openid-configuration").json()
    assert served["request_uri_parameter_supported"] is True and served["require_request_uri_registration"] is True
