"""Progressive delays on guessable secrets: passwords, TOTP and recovery codes.

The model (docs/operations.md "Throttling") in one paragraph: failures are counted in
*buckets* in the shared cache. Each bucket lets ``free`` failures through, then demands a
wait before the next attempt that doubles with every further failure (``DELAY_SECONDS``,
2×, 4×… up to ``MAX_DELAY_SECONDS``). A refusal carries the time to wait ("Retry-After");
the server never sleeps. Nothing is ever locked for everyone:

- an attempt from a **known device** (a signed cookie issued at a full sign-in, see
  ``known_devices.py``) counts only in the bucket of (account, that device);
- an attempt from the account's **usual network** counts only in (account, source address);
- any other attempt counts in (account, source address), in (account, every unfamiliar
  source together) and in (source address, every account).

So no source, and no number of sources, can delay the user on their own device or network;
a shared proxy or NAT address only ever delays unfamiliar attempts. Passkey assertions are
never throttled: they cannot be guessed.

Each attempt is *reserved* before the secret is checked (an atomic increment), so parallel
guesses cannot all pass the check before the first failure is counted. A success clears
the (account, device or source) bucket and gives its reservation back to the attack-wide
ones: only failures count there, so the first sign-ins of many users behind one address
never delay the next. A valid RFC 8628 user code clears nothing (``Scope.success_clears``).
An attempt that is never judged (the database or cache failed during the check) gives its
reservations back too.
"""

from __future__ import annotations

import hashlib
import math
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from django.core.cache import cache
from django.db import DatabaseError
from django.utils import timezone

from core.cache import UNAVAILABLE
from core.client_address import source_key

from . import throttle_store
from .app_settings import app_settings


class Scope(StrEnum):
    PASSWORD = "pwd"
    SECOND_FACTOR = "mfa"
    USER_CODE = "ucode"  # RFC 8628 user codes typed on the device page (idp/flows/device_approval.py)

    @property
    def success_clears(self) -> bool:
        """Whether a success proves the guesser knew this secret, so the failures before it
        were typos: a password or second factor does. A valid user code does not: anyone can
        start a device authorization and type their own code between guesses of someone
        else's (RFC 8628 §5.1), so failures stay counted until they expire."""
        return self is not Scope.USER_CODE


class Basis(StrEnum):
    """Why an attempt is (or is not) recognised for the account it names."""

    KNOWN_DEVICE = "known_device"
    USUAL_NETWORK = "usual_network"
    UNFAMILIAR = "unfamiliar"


class BucketKind(StrEnum):
    ACCOUNT_DEVICE = "account_device"
    ACCOUNT_SOURCE = "account_source"
    ACCOUNT_UNFAMILIAR = "account_unfamiliar"
    SOURCE = "source"


@dataclass(frozen=True)
class Source:
    """Where an attempt comes from: the client address and how it is recognised."""

    address: str | None
    basis: Basis = Basis.UNFAMILIAR
    device: str | None = None  # the known-device nonce, for Basis.KNOWN_DEVICE


@dataclass(frozen=True)
class Bucket:
    kind: BucketKind
    key: str
    free: int

    @property
    def last_key(self) -> str:
        return f"{self.key}:t"


@dataclass
class Attempt:
    """An admitted attempt: its buckets already count it as a failure until it succeeds.
    ``counts[i]`` is ``buckets[i]``'s count with this attempt reserved."""

    scope: Scope
    source: Source
    buckets: list[Bucket] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)


class Throttled(Exception):
    def __init__(self, retry_after: int, bucket: BucketKind, source: Source):
        super().__init__(f"throttled by {bucket}; retry after {retry_after} s")
        self.retry_after = retry_after
        self.bucket = bucket
        self.source = source

    def details(self) -> dict[str, object]:
        return {"retry_after": self.retry_after, "bucket": str(self.bucket), "basis": str(self.source.basis)}


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:40]


def account_key(account: str) -> str:
    return account.strip().lower()


def buckets_for(scope: Scope, account: str, source: Source) -> list[Bucket]:
    """The buckets an attempt on ``account`` from ``source`` counts in (module docstring)."""
    name, where = account_key(account), source_key(source.address)
    prefix = f"vigil:throttle:{scope}"
    free = app_settings.LOGIN_FREE_FAILURES
    if source.basis == Basis.KNOWN_DEVICE and source.device:
        return [Bucket(BucketKind.ACCOUNT_DEVICE, f"{prefix}:dev:{_digest(name, source.device)}", free)]
    buckets = [Bucket(BucketKind.ACCOUNT_SOURCE, f"{prefix}:as:{_digest(name, where)}", free)]
    if source.basis == Basis.UNFAMILIAR:
        buckets += [
            Bucket(BucketKind.ACCOUNT_UNFAMILIAR, f"{prefix}:au:{_digest(name)}",
                   app_settings.LOGIN_UNFAMILIAR_FREE_FAILURES),
            Bucket(BucketKind.SOURCE, f"{prefix}:src:{_digest(where)}", app_settings.LOGIN_SOURCE_FREE_FAILURES),
        ]
    return buckets


def wait_after(failures: int, free: int) -> int:
    """Seconds to wait before the next attempt after ``failures`` counted failures."""
    if failures < free:
        return 0
    doublings = min(failures - free, 32)
    return int(min(app_settings.LOGIN_DELAY_SECONDS * 2**doublings, app_settings.LOGIN_MAX_DELAY_SECONDS))


def _ttl() -> int:
    return app_settings.LOGIN_FAILURE_RESET_SECONDS


def _release(buckets: list[Bucket]) -> None:
    throttle_store.release([b.key for b in buckets], _ttl())


def _left(wait: int, last_ms: int | None, now: float) -> float:
    """Seconds still to wait of ``wait`` since the latest admitted attempt (``last_ms``)."""
    if not wait:
        return 0.0
    elapsed = now - last_ms / 1000 if last_ms is not None else 0.0
    return max(0.0, wait - elapsed)


def admit(scope: Scope, account: str, source: Source, now: datetime | None = None) -> Attempt:
    """Reserve an attempt in every bucket, or raise ``Throttled`` with the longest wait.
    One cache round trip to reserve on Redis, one more to admit or to release."""
    moment = (now or timezone.now()).timestamp()
    buckets = buckets_for(scope, account, source)
    counts, lasts = throttle_store.reserve([b.key for b in buckets], [b.last_key for b in buckets], _ttl())
    waits = [
        _left(wait_after(count - 1, b.free), last, moment)
        for b, count, last in zip(buckets, counts, lasts, strict=True)
    ]
    longest, worst = max(zip(waits, buckets, strict=True), key=lambda pair: pair[0])
    if longest > 0:
        _release(buckets)
        raise Throttled(max(1, math.ceil(longest)), worst.kind, source)
    cache.set_many({b.last_key: int(moment * 1000) for b in buckets}, _ttl())
    return Attempt(scope=scope, source=source, buckets=buckets, counts=counts)


def failed(attempt: Attempt) -> int:
    """The attempt failed (it stays counted). Seconds before this source may try again."""
    return max((wait_after(count, b.free) for b, count in zip(attempt.buckets, attempt.counts, strict=True)), default=0)


def _clears(bucket: Bucket) -> bool:
    return bucket.kind in (BucketKind.ACCOUNT_DEVICE, BucketKind.ACCOUNT_SOURCE)


def succeeded(attempt: Attempt) -> None:
    """Clear the (account, device or source) bucket; the attack-wide ones count failures
    only, so they get this attempt's reservation back. In a scope whose success proves
    nothing (``Scope.success_clears``) every bucket only gets the reservation back."""
    cleared = [b for b in attempt.buckets if _clears(b)] if attempt.scope.success_clears else []
    cache.delete_many([key for b in cleared for key in (b.key, b.last_key)])
    _release([b for b in attempt.buckets if b not in cleared])


def abandoned(attempt: Attempt) -> None:
    """The check never judged the attempt (an outage raised): give every reservation back,
    as far as the cache answers, so an outage counts no failure against anyone."""
    with suppress(*UNAVAILABLE, DatabaseError):  # the cache is down too: the caller raises the outage
        _release(attempt.buckets)
