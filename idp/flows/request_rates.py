"""The rates of the two endpoints where a public client makes Vigil store something: ``/par``
(RFC 9126 §2, a pushed request waiting in the shared cache) and ``/device_authorization``
(RFC 8628 §3.1, a pending row). A public client proves nothing but its ``client_id``, which
anyone can send, so without a rate anyone could fill the cache or the table at will.

**Who is counted.** Requests of public clients (``none``, RFC 6749 §2.1), after client
authentication has found the client and before anything else is done for them (a request
object's signature, the DPoP proof, the store). A confidential client proved its credential:
only its holder spends its requests, and it pushes from its own servers for all its users, so
a rate per address would throttle a busy application's sign-ins, while its every request
names it in the events and the client can be deactivated. (A secret shipped inside every copy
of an app proves nothing: register that app public.)

**Two buckets, one per address and client and one per address** (``Bucket``), each counted in
sliding windows of the shared cache (``core.rates``):

- (client, address), ``IDP_PAR_RATE`` / ``IDP_DEVICE_AUTHORIZATION_RATE``. Never the client
  alone: the caller chooses the ``client_id``, so a per-client budget would let one address
  spend a victim application's budget and lock all its users out. Here an address spends only
  its own share of a client.
- the address over all public clients, ``IDP_PAR_ADDRESS_RATE`` /
  ``IDP_DEVICE_AUTHORIZATION_ADDRESS_RATE``. The caller chooses the client too, so without it
  an address would multiply its budget by the number of public clients registered. A request
  refused by its (client, address) bucket is not counted here: one application hammered from
  a shared NAT address does not use up that address's budget for the others. A request
  refused here is taken back from its (client, address) bucket, as every refused request is
  (``core.rates``): a client waiting for a busy address does not spend its own budget.

An address is the client's address behind trusted proxies (``core.client_address``,
``VIGIL_TRUSTED_PROXIES``; never an ``X-Forwarded-For`` the client wrote), an IPv6 address
counted by its /64 as the sign-in throttle does (``core.client_address.source_key``). No number
of addresses can lock a client out for anyone else: there is no bucket they share.

**A refusal** is ``RateLimitedError``, 429 ``slow_down`` with ``Retry-After`` (the seconds until
one more request is within the rate, ``core.rates``), recorded as the endpoint's event (``oauth.par_refused``,
``oauth.device_authorization``) with outcome ``denied``, reason ``rate_limited``, the bucket and
``retry_after``; nothing is stored. While the cache cannot be reached the rate cannot be
counted and the request is refused with the outage's 503 (docs/operations.md "Outages"), as
the attestation challenge's rate is: an uncounted endpoint is the store-filling hole this
closes. A 503 spends no bucket it was counted in before the cache failed (``core.rates``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime
from enum import StrEnum
from typing import NoReturn

from django.http import HttpRequest
from django.utils import timezone

from clients.models import Client
from core import rates
from core.app_settings import app_settings
from core.cache import UNAVAILABLE
from core.client_address import source_key
from core.events import EventType, Outcome, client_ip, record

from ..oauth.errors import RateLimitedError

#: The events' reason for a request refused by its rate.
RATE_LIMITED = "rate_limited"


class Endpoint(StrEnum):
    PAR = "par"
    DEVICE_AUTHORIZATION = "device_authorization"

    @property
    def event(self) -> EventType:
        return _EVENTS[self]

    @property
    def what(self) -> str:
        return _WHAT[self]


_EVENTS = {Endpoint.PAR: EventType.OAUTH_PAR_REFUSED,
           Endpoint.DEVICE_AUTHORIZATION: EventType.OAUTH_DEVICE_AUTHORIZATION}
_WHAT = {Endpoint.PAR: "pushed authorization requests",
         Endpoint.DEVICE_AUTHORIZATION: "device authorization requests"}


class Bucket(StrEnum):
    """Which count refused a request (the event's ``bucket``)."""

    CLIENT_ADDRESS = "client_address"
    ADDRESS = "address"


#: Each bucket's rate at each endpoint, read when counted. System check ``vigil.E040`` reads
#: every one; a rate that cannot be read is a ``SettingError`` naming its setting (``core.conf``).
RATES: dict[tuple[Endpoint, Bucket], Callable[[], rates.Rate]] = {
    (Endpoint.PAR, Bucket.CLIENT_ADDRESS): lambda: app_settings.PAR_RATE,
    (Endpoint.PAR, Bucket.ADDRESS): lambda: app_settings.PAR_ADDRESS_RATE,
    (Endpoint.DEVICE_AUTHORIZATION, Bucket.CLIENT_ADDRESS): lambda: app_settings.DEVICE_AUTHORIZATION_RATE,
    (Endpoint.DEVICE_AUTHORIZATION, Bucket.ADDRESS): lambda: app_settings.DEVICE_AUTHORIZATION_ADDRESS_RATE,
}


def _key(endpoint: Endpoint, bucket: Bucket, *parts: str) -> str:
    """The bucket's cache key: a digest, so no client-chosen text reaches the key."""
    digest = hashlib.sha256("\x00".join(parts).encode("utf-8", "surrogatepass")).hexdigest()[:40]
    return f"vigil:rate:{endpoint}:{bucket}:{digest}"


def admit(endpoint: Endpoint, client: Client, request: HttpRequest, now: datetime | None = None) -> None:
    """Count this request of ``client`` at ``endpoint``, or refuse it (recorded, then
    ``RateLimitedError``). A confidential client is not counted (module docstring)."""
    if not client.is_public:
        return
    moment = now or timezone.now()
    address = source_key(client_ip(request))
    counted: list[tuple[str, rates.Rate]] = []
    for bucket, parts in ((Bucket.CLIENT_ADDRESS, (client.client_id, address)), (Bucket.ADDRESS, (address,))):
        key, rate = _key(endpoint, bucket, *parts), RATES[endpoint, bucket]()
        try:
            wait = rates.exceeded(key, rate, moment)
        except UNAVAILABLE:  # a 503: the request spends no bucket before this one either
            _take_back(counted, moment, quietly=True)
            raise
        if wait is not None:
            _take_back(counted, moment)  # refused here: the request spends no bucket before this one
            _refuse(endpoint, bucket, wait, client, request)
        counted.append((key, rate))
    for key, rate in counted:  # admitted: spent, unless an outage fails the request later on
        rates.kept_unless_outage(key, rate, moment)


def _take_back(counted: list[tuple[str, rates.Rate]], moment: datetime, *, quietly: bool = False) -> None:
    for key, rate in counted:
        rates.take_back(key, rate, moment, quietly=quietly)


def _refuse(endpoint: Endpoint, bucket: Bucket, wait: int, client: Client, request: HttpRequest) -> NoReturn:
    record(endpoint.event, outcome=Outcome.DENIED, reason=RATE_LIMITED, client_id=client.client_id,
           request=request, bucket=bucket, retry_after=wait)
    who = "this client from this address" if bucket is Bucket.CLIENT_ADDRESS else "this address"
    raise RateLimitedError(f"Too many {endpoint.what} from {who}: retry after {wait} seconds.",
                           retry_after=wait)
