"""Admin actions need the permission their effect needs, not just a view of the list.

Django offers an action to everyone who can see the change list unless the action names
``allowed_permissions``; since Django 2.1 a view permission is enough to see the list. A staff
member given "view" on users, clients or signing keys (an auditor) could reset anyone's second
factors, rotate a client's secret (and read the new one), or rotate the signing keys.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib import admin
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import Permission
from django.test import Client as HttpClient
from django.urls import reverse

from accounts.models import SealedTOTPDevice, User
from accounts.testing import sign_in_with_second_factor
from clients.flows.registration import register_client
from clients.models import Client
from core.models import SecurityEvent


def _actions_without_permissions() -> list[str]:
    missing = []
    for model, model_admin in admin.site._registry.items():
        for action in model_admin.actions or []:
            function = getattr(model_admin, action) if isinstance(action, str) else action
            if not getattr(function, "allowed_permissions", None):
                missing.append(f"{model._meta.label}.{getattr(function, '__name__', action)}")
    return missing


def test_every_admin_action_names_the_permission_it_needs() -> None:
    assert _actions_without_permissions() == []


@pytest.fixture
def viewer(db: Any) -> HttpClient:
    """A staff member who may only look at users and clients, signed in with two factors."""
    user = User.objects.create_user("auditor", password="password", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=["view_user", "view_client"]))
    return sign_in_with_second_factor(HttpClient(), user, "password")


def _run(client: HttpClient, url_name: str, action: str, pk: int) -> Any:
    return client.post(reverse(url_name), {"action": action, ACTION_CHECKBOX_NAME: [str(pk)]})


@pytest.mark.django_db
def test_a_viewer_cannot_reset_anothers_factors(viewer: HttpClient) -> None:
    victim = User.objects.create_user("victim", password="password")
    sign_in_with_second_factor(HttpClient(), victim, "password")
    events = SecurityEvent.objects.count()
    response = _run(viewer, "admin:accounts_user_changelist", "reset_factors", victim.pk)
    assert response.status_code in (200, 302)
    assert SealedTOTPDevice.objects.filter(user=victim, confirmed=True).exists()
    assert not SecurityEvent.objects.filter(event_type="factor.reset").exists()
    assert SecurityEvent.objects.count() == events


@pytest.mark.django_db
def test_a_viewer_cannot_rotate_a_client_secret(viewer: HttpClient) -> None:
    registered = register_client(name="Web", public=False, redirect_uris=["https://rp.example/cb"])
    before = Client.objects.get(pk=registered.client.pk).secret_hash
    response = _run(viewer, "admin:clients_client_changelist", "rotate_client_secret", registered.client.pk)
    assert response.status_code in (200, 302)
    assert Client.objects.get(pk=registered.client.pk).secret_hash == before
    assert not SecurityEvent.objects.filter(event_type="client.secret_rotated").exists()
    follow = viewer.get(reverse("admin:clients_client_changelist"))
    assert b"New secret" not in follow.content


@pytest.mark.django_db
def test_staff_who_may_change_clients_still_rotate_a_secret() -> None:
    staff = User.objects.create_user("operator", password="password", is_staff=True)
    staff.user_permissions.set(Permission.objects.filter(codename__in=["view_client", "change_client"]))
    operator = sign_in_with_second_factor(HttpClient(), staff, "password")
    registered = register_client(name="Web", public=False, redirect_uris=["https://rp.example/cb"])
    before = Client.objects.get(pk=registered.client.pk).secret_hash
    response = _run(operator, "admin:clients_client_changelist", "rotate_client_secret", registered.client.pk)
    assert response.status_code == 302
    assert Client.objects.get(pk=registered.client.pk).secret_hash != before
    event = SecurityEvent.objects.get(event_type="client.secret_rotated")
    assert event.details["admin"] == "operator" and event.ip_address is not None  # who, from where
