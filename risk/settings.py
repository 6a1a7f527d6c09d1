"""Settings of risk evaluation, read lazily from ``SESSIONS_RISK_*`` (and ``SESSIONS_GEOIP_DATABASE``).

Same conventions as ``sessions.app_settings``: every property documents its default, reads
Django settings (or the environment, copied there as strings) at each access and coerces
its type, so tests change them with the ``settings`` fixture.
"""

from __future__ import annotations

from sessions.app_settings import _bool, _get, _int


def _float(name: str, default: float) -> float:
    return float(_get(name, default))


class RiskSettings:
    @property
    def ENABLED(self) -> bool:
        """Evaluate risk signals on token, userinfo and usage requests. Default on."""
        return _bool("RISK_ENABLED", True)

    @property
    def UNATTESTED_MIN_ACTION(self) -> str:
        """The least action a location signal (``impossible_travel``, ``new_country``) takes on
        a session of an unattested device, whatever the client's policy says, when that is
        stronger (docs/unattested-devices.md): ``record``, ``step_up`` or ``revoke``. Default
        ``step_up``: a device that proved nothing is not trusted to move."""
        value = str(_get("RISK_UNATTESTED_MIN_ACTION", "step_up"))
        return value if value in {"record", "step_up", "revoke"} else "step_up"

    # ------------------------------------------------------------------ geolocation
    @property
    def GEOIP_DATABASE(self) -> str:
        """Path of a MaxMind DB (``.mmdb``) City database. Default: empty, which uses the
        GeoLite2 City database shipped by the ``maxminddb-geolite2`` package. Looked up
        offline; nothing is fetched at run time."""
        return str(_get("GEOIP_DATABASE", "") or "")

    # ------------------------------------------------------------------ impossible travel
    @property
    def TRAVEL_MAX_SPEED_KMH(self) -> float:
        """Speed (km/h) between two consecutive locations of one user above which travel is
        impossible. Default 1000 (a little above an airliner's cruise)."""
        return _float("RISK_TRAVEL_MAX_SPEED_KMH", 1000.0)

    @property
    def TRAVEL_MIN_DISTANCE_KM(self) -> float:
        """Distance floor (km, after subtracting both locations' accuracy radii): shorter
        moves never count as impossible travel (IP geolocation is coarse). Default 500."""
        return _float("RISK_TRAVEL_MIN_DISTANCE_KM", 500.0)

    # ------------------------------------------------------------------ data volume
    @property
    def VOLUME_BASELINE_DAYS(self) -> int:
        """Days before today whose daily volumes make the baseline (their median). Default 14."""
        return _int("RISK_VOLUME_BASELINE_DAYS", 14)

    @property
    def VOLUME_MIN_HISTORY_DAYS(self) -> int:
        """Days with a usage report, within the baseline window, before a baseline exists
        (no anomaly is judged without one). Default 7."""
        return _int("RISK_VOLUME_MIN_HISTORY_DAYS", 7)

    @property
    def VOLUME_FACTOR(self) -> float:
        """Today's volume must exceed this multiple of the baseline. Default 10."""
        return _float("RISK_VOLUME_FACTOR", 10.0)

    @property
    def VOLUME_FLOOR_BYTES(self) -> int:
        """... and exceed this many bytes (small absolute volumes never fire). Default 100 MiB."""
        return _int("RISK_VOLUME_FLOOR_BYTES", 100 * 1024 * 1024)

    @property
    def USAGE_MAX_PERIOD_SECONDS(self) -> int:
        """Longest period one usage report may cover. Default 86400 (a day)."""
        return _int("RISK_USAGE_MAX_PERIOD_SECONDS", 86400)

    @property
    def USAGE_CLOCK_SKEW_SECONDS(self) -> int:
        """How far in the future a report's ``period_end`` may lie. Default 300."""
        return _int("RISK_USAGE_CLOCK_SKEW_SECONDS", 300)

    @property
    def BASELINE_CHUNK_SIZE(self) -> int:
        """Users per chunk when the Celery task recomputes baselines. Default 500."""
        return _int("RISK_BASELINE_CHUNK_SIZE", 500)

    @property
    def BASELINE_REFRESH_SECONDS(self) -> int:
        """Beat period of the baseline recomputation; 0 disables the schedule. Default 86400."""
        return _int("RISK_BASELINE_REFRESH_SECONDS", 86400)

    # ------------------------------------------------------------------ attestation
    @property
    def ATTESTATION_STREAK(self) -> int:
        """Consecutive failed attestations (``attestation.token_refused`` events) on one session,
        since its last successful token request, that make a streak; a reused or expired
        challenge or an outage of a service the check needs (``attestation.errors.NOT_THE_DEVICES_FAILURE``)
        is none. Default 3."""
        return _int("RISK_ATTESTATION_STREAK", 3)


risk_settings = RiskSettings()
