"""Passkey ceremonies of one browser session that overlap (``accounts/webauthn_rp.py``): two
tabs asking for options at once, a ceremony finishing while another begins, the same response
sent twice at once. Django loads a request's session when it first reads it and writes the
whole of it back at the end, so a request that read the session before another wrote it
writes over that other's changes: a challenge handed out can vanish, and a challenge spent can
come back. Whatever the order, a challenge is accepted at most once (WebAuthn L3 §13.4.3,
the used-mark in the shared cache), a ceremony whose challenge was lost is refused with a
readable message and spends no other ceremony's, and nothing is a 500.

The overlap is made exact: ``meanwhile`` runs the other request, with the same session cookie
(another tab), at a chosen statement of the first one, after it read the session and before
it wrote it back. The authenticator is a software one whose signature counter stays 0, as a
synced passkey's does, so only the challenge can refuse a response sent twice."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from unittest.mock import patch

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.test import Client
from django.urls import reverse

from accounts import webauthn_rp
from accounts.models import Passkey
from accounts.tests.conftest import code_for, login_password, session_auth
from core.models import SecurityEvent
from core.outage_testing import cache_down
from core.session_store import SessionStore

from .soft_authenticator import SoftAuthenticator, challenge_of

pytestmark = pytest.mark.django_db

RP_ID, ORIGIN = "vigil.example", "https://vigil.example"
REFUSED = "The passkey could not be verified. Try again."


@pytest.fixture(autouse=True)
def relying_party(settings: Any) -> None:
    settings.ACCOUNTS_WEBAUTHN_RP_ID = RP_ID
    settings.ACCOUNTS_WEBAUTHN_ALLOWED_ORIGINS = [ORIGIN]


def other_tab(client: Client) -> Client:
    """Another tab of the same browser: the same session cookie."""
    tab = Client()
    tab.cookies[django_settings.SESSION_COOKIE_NAME] = client.cookies[django_settings.SESSION_COOKIE_NAME].value
    return tab


def looks_up_the_passkey(sql: str) -> bool:
    """The assertion's credential looked up (under a row lock on PostgreSQL) to check it."""
    return sql.lstrip().upper().startswith("SELECT") and '"accounts_passkey"."credential_id" =' in sql


def stores_the_passkey(sql: str) -> bool:
    return sql.lstrip().upper().startswith("INSERT") and "accounts_passkey" in sql


SESSION_SAVE = "its first session save"
CHALLENGE_CLAIM = "its claim of the challenge's used-mark"


@contextmanager
def meanwhile(at: Callable[[str], bool] | str, other: Callable[[], Any]) -> Iterator[list[Any]]:
    """Run ``other`` (another request) once, while the request made inside the block is just
    before ``at``: the first statement a predicate selects, ``SESSION_SAVE`` or
    ``CHALLENGE_CLAIM``; yields ``other``'s answer. A save made outside the request's own
    transactions (the middleware's) lets ``other`` commit on its own, as it would."""
    answers: list[Any] = []

    def run_other_once() -> None:
        if not answers:
            answers.append(None)  # the other request's own statements, saves and claims pass straight through
            answers[0] = other()

    def interleave(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        if callable(at) and at(sql):
            run_other_once()
        return execute(sql, params, many, context)

    def before(point: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def hooked(*args: Any, **kwargs: Any) -> Any:
            if at == point:
                run_other_once()
            return real(*args, **kwargs)
        return hooked

    with (connection.execute_wrapper(interleave),
          patch.object(SessionStore, "save", before(SESSION_SAVE, SessionStore.save)),
          patch.object(webauthn_rp, "claim", before(CHALLENGE_CLAIM, webauthn_rp.claim))):
        yield answers
    assert answers, "the other request never ran"


def post(client: Client, name: str, body: dict[str, Any]) -> Any:
    client.raise_request_exception = False  # a 500 is an answer to assert on, not an exception
    return client.post(reverse(name), json.dumps(body), content_type="application/json")


# --- registration ---------------------------------------------------------------------------
def creation_options(client: Client) -> Any:
    return post(client, "accounts:passkey_register_options", {})


def register(client: Client, authenticator: SoftAuthenticator, options: Any) -> Any:
    credential = authenticator.create(options.json())
    return post(client, "accounts:passkey_register", {"credential": credential, "name": "Key", "next": "/accounts/"})


def registration_failures() -> list[str]:
    return list(SecurityEvent.objects.filter(event_type="factor.passkey.register").values_list("reason", flat=True))


def test_two_tabs_asking_for_creation_options_at_once(
    client: Client, user: Any, totp_device: Any, frozen: Any
) -> None:
    """Each tab is handed its own challenge, but the first tab's session write (last) carries
    only its own: the second tab's ceremony is refused readably, spending nothing; the first
    tab's registers; the second tab, tried again, registers too."""
    login_password(client)  # and the app: a user with a factor adds passkeys signed in with two
    assert client.post(reverse("accounts:verify"), {"method": "totp", "code": code_for(totp_device)}).status_code == 302
    tab = other_tab(client)
    first_key, second_key = SoftAuthenticator(RP_ID, ORIGIN), SoftAuthenticator(RP_ID, ORIGIN)
    with meanwhile(SESSION_SAVE, lambda: creation_options(tab)) as second:
        first = creation_options(client)
    assert first.status_code == second[0].status_code == 200
    assert first.json()["challenge"] != second[0].json()["challenge"]  # never the same challenge

    refused = register(tab, second_key, second[0])
    assert refused.status_code == 400 and refused.json() == {"error": "unknown_challenge", "message": REFUSED}
    assert not Passkey.objects.exists() and registration_failures() == ["unknown_challenge"]

    assert register(client, first_key, first).status_code == 200  # its challenge was not spent
    again = register(tab, second_key, creation_options(tab))
    assert again.status_code == 200, again.content
    assert Passkey.objects.filter(user=user).count() == 2


def test_a_registration_finishing_while_another_tab_begins(client: Client, user: Any, frozen: Any) -> None:
    """The other tab read the session before the registration spent its challenge and writes it
    back after: the spent challenge is in the session again. The same response sent again is
    still refused (the used-mark), and the other tab's ceremony finishes."""
    login_password(client)
    tab = other_tab(client)
    authenticator, other_key = SoftAuthenticator(RP_ID, ORIGIN), SoftAuthenticator(RP_ID, ORIGIN)
    options = creation_options(client)
    credential = authenticator.create(options.json())
    body = {"credential": credential, "name": "Key", "next": "/accounts/"}
    with meanwhile(SESSION_SAVE, lambda: post(client, "accounts:passkey_register", body)) as finished:
        second = creation_options(tab)
    assert finished[0].status_code == 200 and second.status_code == 200
    kept = [entry["c"] for entry in tab.session[webauthn_rp.CHALLENGE_SESSION_KEY]["register"]]
    assert challenge_of(credential) in kept  # spent, and written back by the other tab

    Passkey.objects.all().delete()  # only the challenge may refuse it now, not the stored credential
    replay = post(tab, "accounts:passkey_register", body)
    assert replay.status_code == 400 and replay.json() == {"error": "challenge_used", "message": REFUSED}
    assert not Passkey.objects.exists() and registration_failures() == ["challenge_used"]
    assert register(tab, other_key, second).status_code == 200


def test_the_same_registration_sent_twice_at_once(client: Client, user: Any, frozen: Any) -> None:
    """A double submit: the second arrives while the first, its response verified, stores it."""
    login_password(client)
    tab = other_tab(client)
    options = creation_options(client)
    body = {"credential": SoftAuthenticator(RP_ID, ORIGIN).create(options.json()), "name": "Key"}
    with meanwhile(stores_the_passkey, lambda: post(tab, "accounts:passkey_register", body)) as second:
        first = post(client, "accounts:passkey_register", body)
    answers = sorted([first.status_code, second[0].status_code])
    assert answers == [200, 400], (first.content, second[0].content)
    loser = first if first.status_code == 400 else second[0]
    assert loser.json() == {"error": "challenge_used", "message": REFUSED}
    assert Passkey.objects.filter(user=user).count() == 1


# --- passwordless sign-in -----------------------------------------------------------------------
def request_options(client: Client) -> Any:
    return post(client, "accounts:passkey_auth_options", {"purpose": "login"})


def sign_in(client: Client, authenticator: SoftAuthenticator, options: Any) -> Any:
    return post(client, "accounts:passkey_auth_verify",
                {"purpose": "login", "credential": authenticator.get(options.json()), "next": "/accounts/"})


def enrolled(user: Any) -> SoftAuthenticator:
    """A passkey of ``user``'s on a software authenticator (stored as a registration stores it)."""
    authenticator = SoftAuthenticator(RP_ID, ORIGIN)
    client = Client()
    login_password(client)
    assert register(client, authenticator, creation_options(client)).status_code == 200
    return authenticator


def sign_ins() -> int:
    return SecurityEvent.objects.filter(event_type="login.passkey", outcome="success").count()


def test_two_sign_in_tabs_asking_for_options_at_once(client: Client, user: Any, frozen: Any) -> None:
    authenticator = enrolled(user)
    assert request_options(client).status_code == 200  # the page was open: the session exists
    tab = other_tab(client)
    with meanwhile(SESSION_SAVE, lambda: request_options(tab)) as second:
        first = request_options(client)
    assert first.json()["challenge"] != second[0].json()["challenge"]

    refused = sign_in(tab, authenticator, second[0])
    assert refused.status_code == 400 and refused.json() == {"error": "unknown_challenge", "message": REFUSED}
    assert session_auth(tab) is None
    assert sign_in(client, authenticator, first).status_code == 200  # its challenge was not spent
    assert session_auth(client) is not None and sign_ins() == 1


@pytest.mark.parametrize(
    "at", [CHALLENGE_CLAIM, looks_up_the_passkey, SESSION_SAVE],
    ids=["before-it-claims-the-challenge", "before-it-checks-the-assertion", "before-it-writes-the-session"],
)
def test_the_same_assertion_sent_twice_at_once_signs_in_once(
    client: Client, user: Any, frozen: Any, at: Callable[[str], bool] | str
) -> None:
    """A double submit: both requests read the session holding the challenge, and the second
    runs at a point of the first's. Only one signs in; the other is refused (``challenge_used``,
    recorded), in JSON unless the winner's sign-in replaced the session it was writing back
    (then Django's 400 for a session deleted meanwhile), never a 500."""
    authenticator = enrolled(user)
    options = request_options(client)
    tab = other_tab(client)
    body = {"purpose": "login", "credential": authenticator.get(options.json()), "next": "/accounts/"}
    with meanwhile(at, lambda: post(tab, "accounts:passkey_auth_verify", body)) as second:
        first = post(client, "accounts:passkey_auth_verify", body)
    answers = [first, second[0]]
    assert sorted(a.status_code for a in answers) == [200, 400], [a.content for a in answers]
    loser = next(a for a in answers if a.status_code == 400)
    if loser["Content-Type"] == "application/json":
        assert loser.json() == {"error": "challenge_used", "message": REFUSED}
    assert sign_ins() == 1
    assert SecurityEvent.objects.filter(event_type="login.passkey", outcome="failure",
                                        reason="challenge_used").count() == 1


def test_an_assertion_sent_again_after_another_tab_wrote_its_challenge_back(
    client: Client, user: Any, frozen: Any
) -> None:
    """The other tab read the session before the sign-in and writes it back after: the sign-in
    replaced that session (a new session id), so the other tab's write finds it gone and is
    refused, never a 500; the assertion sent again, from either tab, signs nobody in."""
    authenticator = enrolled(user)
    options = request_options(client)
    tab = other_tab(client)
    body = {"purpose": "login", "credential": authenticator.get(options.json()), "next": "/accounts/"}
    with meanwhile(SESSION_SAVE, lambda: post(client, "accounts:passkey_auth_verify", body)) as signed:
        late = request_options(tab)
    assert signed[0].status_code == 200 and sign_ins() == 1
    # Its session was replaced by the sign-in meanwhile: Django's 400 "session deleted before the
    # request completed" (core.session_store), never a 500; passkeys.js shows "could not be used".
    assert late.status_code == 400, late.content

    for sender in (tab, client):
        replay = post(sender, "accounts:passkey_auth_verify", body)
        assert replay.status_code == 400 and replay.json()["message"] == REFUSED, replay.content
    assert sign_ins() == 1


def test_without_the_cache_the_challenge_is_not_spent(client: Client, user: Any, frozen: Any, settings: Any) -> None:
    """The used-mark cannot be made: a 503 in JSON (the ceremonies are fetched as JSON) that
    signs nobody in and spends nothing, so the same assertion signs in once the cache is back,
    and only once."""
    authenticator = enrolled(user)
    options = request_options(client)
    body = {"purpose": "login", "credential": authenticator.get(options.json()), "next": "/accounts/"}
    with cache_down(settings):
        failed = post(client, "accounts:passkey_auth_verify", body)
    assert failed.status_code == 503 and failed.json()["error"] == "temporarily_unavailable" and failed["Retry-After"]
    assert session_auth(client) is None and sign_ins() == 0
    assert not SecurityEvent.objects.filter(event_type="login.passkey").exists()

    assert post(client, "accounts:passkey_auth_verify", body).status_code == 200
    assert sign_ins() == 1
    assert post(client, "accounts:passkey_auth_verify", body).status_code == 400 and sign_ins() == 1
