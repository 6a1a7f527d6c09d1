"""Settings of device sessions and token binding, read lazily from ``SESSIONS_*`` Django settings.

Each property documents its default. Values may come from Django settings or from the
environment (``vigil/settings.py`` copies every ``SESSIONS_*`` environment variable into
Django settings as a string), so every property coerces its type. Nothing is cached:
tests use the ``settings`` fixture / ``override_settings`` and see the change at once.

Layout: one marked section per feature. The DPoP section is owned by ``sessions/dpop/``;
the token endpoint adds its refresh/rotation properties in their own section.
"""

from __future__ import annotations

from core.conf import SettingsReader

#: Every DPoP ``alg`` Vigil can verify: asymmetric only (RFC 9449 §4.3 check 5).
DPOP_SUPPORTED_ALGS = ("ES256", "RS256", "PS256", "EdDSA")


_reader = SettingsReader("SESSIONS_")
_get = _reader.get
_int = _reader.int
_bool = _reader.bool
_list = _reader.list


class AppSettings:
    # ------------------------------------------------------------------ DPoP (RFC 9449)
    @property
    def DPOP_ALGS(self) -> list[str]:
        """JWS algorithms accepted in DPoP proofs, in preference order; also advertised as
        ``dpop_signing_alg_values_supported`` and in ``WWW-Authenticate: DPoP algs=...``.
        Default ES256, RS256, PS256, EdDSA. Names outside ``DPOP_SUPPORTED_ALGS`` (``none``,
        ``HS256``...) are dropped, so no setting can enable a symmetric or unsigned proof."""
        wanted = _list("DPOP_ALGS", list(DPOP_SUPPORTED_ALGS))
        return [alg for alg in wanted if alg in DPOP_SUPPORTED_ALGS]

    @property
    def DPOP_MAX_AGE(self) -> int:
        """Seconds after its ``iat`` a DPoP proof is still accepted. Default 300."""
        return _int("DPOP_MAX_AGE", 300)

    @property
    def DPOP_CLOCK_SKEW(self) -> int:
        """Seconds of client clock error tolerated on either side of the ``iat`` window
        (a proof may be up to this far in the future). Default 30."""
        return _int("DPOP_CLOCK_SKEW", 30)

    @property
    def DPOP_NONCE_WINDOW(self) -> int:
        """Seconds of one server-nonce window. A ``DPoP-Nonce`` is accepted during the window
        it was issued in and the next one, so it lives between one and two windows. Default 300."""
        return _int("DPOP_NONCE_WINDOW", 300)

    @property
    def DPOP_NONCE_REQUIRED(self) -> bool:
        """Whether the token endpoint demands a server nonce in every proof (RFC 9449 §8).
        ``verify_proof`` does not read it: callers pass ``nonce_required=`` explicitly.
        Default off."""
        return _bool("DPOP_NONCE_REQUIRED", False)

    @property
    def DPOP_REPLAY_CACHE(self) -> str:
        """Alias in ``CACHES`` of the shared store remembering proof ``jti`` values (RFC 9449
        §11.1). It must be shared by every web process (Redis in production) and must not
        evict entries early. Default ``"default"``."""
        return str(_get("DPOP_REPLAY_CACHE", "default"))

    @property
    def ATTESTATION_MAX_FAILURES(self) -> int:
        """Failed attestations on one device session (within an hour) before the session is
        revoked. Default 3."""
        return _int("ATTESTATION_MAX_FAILURES", 3)

    @property
    def DEVICE_BOUND_REFRESH_GRACE_SECONDS(self) -> int:
        """Seconds a device-bound session may re-present its just-rotated refresh token (with
        fresh attestation) after a lost response and get the same successor, instead of the family
        being revoked. Default 120."""
        return _int("DEVICE_BOUND_REFRESH_GRACE_SECONDS", 120)

    @property
    def ROTATE_IN_ONE_STATEMENT(self) -> bool:
        """On PostgreSQL, rotate a refresh token (lock the family, mark the token used, store
        its successor, the access token and the events) in one data-modifying statement when
        nothing else on the way needs the database (``sessions/flows/rotation_statement.py``).
        Default True. False: always the transactional path, same outcome in more statements."""
        return _bool("ROTATE_IN_ONE_STATEMENT", True)

    # ------------------------------------------------------------------ Unattested devices (docs/unattested-devices.md)
    @property
    def UNATTESTED_REFRESH_LIMIT(self) -> int:
        """Refreshes one session of an unattested device may make per
        ``UNATTESTED_REFRESH_WINDOW``; more are refused (429 ``slow_down``, ``Retry-After``).
        Attested sessions have no such limit. Default 40 (one every 90 s for an hour: a
        reduced access token lives 120 s)."""
        return max(1, _int("UNATTESTED_REFRESH_LIMIT", 40))

    @property
    def UNATTESTED_REFRESH_WINDOW(self) -> int:
        """Seconds of the sliding window ``UNATTESTED_REFRESH_LIMIT`` counts in (``core.rates``). Default 3600."""
        return max(1, _int("UNATTESTED_REFRESH_WINDOW", 3600))

    # ------------------------------------------------------------------ Revalidation (sessions/revalidation.py)
    @property
    def ATTESTATION_MAX_AGE_SECONDS(self) -> int:
        """Seconds a device's last good evidence (full attestation, or an assertion with its
        attested key, whichever is newer) stays good. Older: the device is marked to require a
        full re-attestation, and the token endpoint revokes its session at the next refresh.
        Default 86400 (24 hours)."""
        return _int("ATTESTATION_MAX_AGE_SECONDS", 86400)

    @property
    def ATTESTATION_MAX_AGE_BY_CLIENT(self) -> dict[str, int]:
        """Per-client ``ATTESTATION_MAX_AGE_SECONDS``: ``{"client_id": seconds}``, or from the
        environment ``"client-a=3600,client-b=600"``. Default empty."""
        value = _get("ATTESTATION_MAX_AGE_BY_CLIENT", {})
        if isinstance(value, str):
            pairs = (item.split("=", 1) for item in value.replace(",", " ").split() if "=" in item)
            return {name.strip(): int(seconds) for name, seconds in pairs}
        return {str(name): int(seconds) for name, seconds in dict(value).items()}

    @property
    def REATTESTATION_GRACE_SECONDS(self) -> int:
        """Seconds past ``ATTESTATION_MAX_AGE_SECONDS`` an active session of a device that was
        marked and has not attested again survives before the revalidation task revokes it
        (``attestation_stale``). Default 86400."""
        return _int("REATTESTATION_GRACE_SECONDS", 86400)

    @property
    def REVALIDATION_BATCH_SIZE(self) -> int:
        """Rows the revalidation tasks lock and handle in one transaction. Default 500."""
        return max(1, _int("REVALIDATION_BATCH_SIZE", 500))


app_settings = AppSettings()
