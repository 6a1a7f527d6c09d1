"""Revocation cascades (issue 5 §5): deactivating or deleting a user, deactivating or deleting
a client or revoking a device ends its token families at once, so introspection and userinfo refuse
their tokens immediately rather than at the next refresh. Each family ends through the one path
(``sessions.flows.revocation``), so each is recorded and announced. The receivers here
connect when ``DeviceSessionsConfig.ready()`` imports this module. Bulk deactivations, which
send no ``post_save`` (``core.deactivation``): clients' are announced to a receiver here
(``clients.signals.deactivated_in_bulk``: clients sits below sessions); users' are revoked by
``accounts.models.UserQuerySet`` itself, accounts sitting above sessions."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db.models.signals import post_save, pre_delete
from django.dispatch import receiver

from attestation.signals import device_revoked
from clients.models import Client
from clients.signals import deactivated_in_bulk

from . import revocation
from .revocation import Reason


def revoke_device_sessions(device_id: int, reason: str) -> int:
    """End every live family of the device (``attestation.signals.device_revoked``)."""
    return revocation.revoke_sessions(revocation.live_sessions(device_id=device_id), reason)


@receiver(device_revoked, dispatch_uid="sessions.device_revoked")
def _device_revoked(sender: Any, device: Any, **kwargs: Any) -> None:
    """``attestation.signals.device_revoked``: its families end at once."""
    revoke_device_sessions(device.pk, Reason.DEVICE_REVOKED)


@receiver(pre_delete, sender=settings.AUTH_USER_MODEL, dispatch_uid="vigil-user-deleted")
def _user_deleted(sender: Any, instance: Any, **kwargs: Any) -> None:
    """A deleted user's families end through the one path first (recorded, announced to the
    relying services) instead of vanishing with the user's rows."""
    revocation.revoke_user_sessions(instance, Reason.USER_DELETED)


@receiver(pre_delete, sender=Client, dispatch_uid="vigil-client-deleted")
def _client_deleted(sender: Any, instance: Client, **kwargs: Any) -> None:
    """A deleted client's families end through the one path first, as a deleted user's do; so
    do its tokens outside them (client credentials, token exchange into another's family),
    each on record, instead of vanishing with the client's rows."""
    _end_client_tokens(instance, Reason.CLIENT_DELETED)


@receiver(post_save, sender=Client, dispatch_uid="vigil-client-deactivated")
def _client_saved(sender: Any, instance: Client, created: bool, **kwargs: Any) -> None:
    """A deactivated client's families and its tokens outside them end at once, as a deleted
    client's do: its refresh tokens stopped at once (the client no longer authenticates), but
    its access tokens stayed active at userinfo and introspection until they expired. A
    bulk write is announced apart (``_clients_deactivated_in_bulk``); a write that skips Django
    (raw SQL, a data migration) sends nothing, and its tokens are judged where they are used
    (``AccessToken.clients_active``, ``refresh.judge``'s ``client_inactive``)."""
    if not created and not instance.is_active:
        _end_client_tokens(instance, Reason.CLIENT_DEACTIVATED)


@receiver(deactivated_in_bulk, dispatch_uid="vigil-clients-deactivated-in-bulk")
def _clients_deactivated_in_bulk(sender: Any, clients: list[Client], **kwargs: Any) -> None:
    """``ClientQuerySet.update(is_active=False)`` or ``bulk_update``: as ``_client_saved``."""
    for client in clients:
        _end_client_tokens(client, Reason.CLIENT_DEACTIVATED)


def _end_client_tokens(client: Client, reason: Reason) -> None:
    """Every live family of ``client``, then its access tokens outside them."""
    revocation.revoke_sessions(revocation.live_sessions(client_id=client.pk), reason)
    revocation.revoke_client_access_tokens(client, reason)


@receiver(post_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="vigil-user-deactivated")
def _user_saved(sender: Any, instance: Any, created: bool, **kwargs: Any) -> None:
    if not created and not instance.is_active:
        revocation.revoke_user_sessions(instance, Reason.USER_DEACTIVATED)
