"""Back-channel logout end to end: a real Celery worker on Redis sends the logout token of a
session an admin revoked to a relying party that
validates it with PyJWT against the live JWKS (OpenID Connect Back-Channel Logout 1.0 §2.6);
the RP's first answer is a 503, the retry (exponential backoff) is delivered."""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests
from django.conf import settings
from django.utils import timezone

from core import keys
from core.events import EventType
from core.models import SecurityEvent
from idp.backchannel import listener
from sessions.flows.revocation import Reason, revoke_session
from sessions.models import DeviceSession
from tests.celery_support import celery_worker

from .bcl_receiver import LogoutReceiver, validate_logout_token

pytestmark = [pytest.mark.postgres, pytest.mark.celery, pytest.mark.django_db(transaction=True)]

QUEUE = "vigil-bcl-test"


@pytest.fixture
def worker(allow_private_outbound: None) -> Any:
    """The worker posts to a receiver on 127.0.0.1: it is started with private addresses allowed."""
    with celery_worker(QUEUE) as sender:
        yield sender


def _wait_for_event(event_type: EventType, timeout: float = 90) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if SecurityEvent.objects.filter(event_type=event_type).exists():
            return True
        time.sleep(0.5)
    return False


def test_worker_retries_and_the_rp_validates_the_logout_token(
    worker: Any, live_server: Any, user: Any, mobile_client: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    keys.ensure_keys()
    monkeypatch.setattr(
        listener, "enqueue", lambda pk: worker.send_task("idp.send_backchannel_logout", args=[pk], queue=QUEUE)
    )
    # The worker signs with the issuer of its settings; the RP checks that issuer against the live JWKS.
    verify = lambda token: validate_logout_token(  # noqa: E731
        token, jwks_url=f"{live_server.url}/jwks.json", issuer=settings.IDP_ISSUER,
        audience=mobile_client.client.client_id,
    )
    with LogoutReceiver(verify=verify, statuses=[503, 200]) as rp:
        client = mobile_client.client
        client.backchannel_logout_uri = rp.uri
        client.backchannel_logout_session_required = True
        client.save()
        session = DeviceSession.objects.create(sid="bcl-live-sid", user=user, client=client,
                                               auth_time=timezone.now(), amr=["pwd"])
        assert requests.get(f"{live_server.url}/.well-known/openid-configuration", timeout=10).json()[
            "backchannel_logout_supported"] is True
        revoke_session(session, Reason.REVOKED_BY_ADMIN)  # commits: on_commit hands it to the worker
        assert _wait_for_event(EventType.OAUTH_BACKCHANNEL_LOGOUT_SENT)
        received = list(rp.received)
    assert [r.status for r in received] == [503, 200], [r.error for r in received]
    claims = received[1].claims
    assert claims is not None and claims["sid"] == "bcl-live-sid" and claims["sub"] == user.get_user_id()
    assert not SecurityEvent.objects.filter(event_type=EventType.OAUTH_BACKCHANNEL_LOGOUT_FAILED).exists()
