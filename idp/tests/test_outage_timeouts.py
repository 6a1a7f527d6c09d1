"""A store that accepts connections but never answers fails the request within seconds
instead of holding the worker (docs/operations.md "Outages", "Fail fast")."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection, connections
from django.db import utils as db_utils
from django.test import Client as HttpClient
from django.urls import reverse

from core import outage
from core.cache import SOCKET_TIMEOUT_SECONDS


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A listener whose connections complete (the kernel's backlog) but never get a byte back."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield int(listener.getsockname()[1])


@pytest.mark.django_db
def test_a_silent_redis_fails_the_request_within_the_socket_timeout(silent_port: int, settings: Any,
                                                                    user: Any) -> None:
    settings.CACHES = {"default": {"BACKEND": "core.cache.RedisCache", "LOCATION": f"redis://127.0.0.1:{silent_port}/0"}}
    started = time.monotonic()
    response = HttpClient(raise_request_exception=False).post(reverse("accounts:login"),
                                                              {"username": "alice", "password": "x"})
    elapsed = time.monotonic() - started
    assert response.status_code == 503 and response["Retry-After"]
    # redis-py's own default would wait 5 s per call; one timed-out call ends the request.
    assert SOCKET_TIMEOUT_SECONDS - 0.5 <= elapsed < SOCKET_TIMEOUT_SECONDS + 1.5


@pytest.mark.postgres
@pytest.mark.django_db
def test_a_silent_postgresql_fails_to_connect_within_the_connect_timeout(silent_port: int) -> None:
    timeout = connection.settings_dict["OPTIONS"]["connect_timeout"]
    # A second connection object of the same alias, to a server that never answers.
    wrapper = type(connections["default"])({**connection.settings_dict, "HOST": "127.0.0.1", "PORT": silent_port})
    outcome: list[BaseException] = []

    def connect() -> None:
        try:
            wrapper.ensure_connection()
        except BaseException as exc:  # noqa: BLE001 (handed to the test thread)
            outcome.append(exc)

    started = time.monotonic()
    attempt = threading.Thread(target=connect, daemon=True)  # without a timeout it would wait forever
    attempt.start()
    attempt.join(timeout + 5)
    elapsed = time.monotonic() - started
    assert not attempt.is_alive(), "the connection attempt is still waiting"
    assert isinstance(outcome[0], db_utils.OperationalError)
    assert outage.dependency_of(outcome[0]) is outage.Dependency.DATABASE
    assert elapsed < timeout + 2
