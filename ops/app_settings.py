"""Settings of the operations endpoints, read lazily from ``VIGIL_*`` Django settings
(``vigil/settings.py`` copies them from the environment; README "Configuration")."""

from __future__ import annotations

from core.conf import SettingsReader

_reader = SettingsReader("VIGIL_")


class OpsSettings:
    @property
    def METRICS_TOKEN(self) -> str:
        """The bearer token Prometheus sends to read ``/metrics`` (``Authorization: Bearer …``).
        Default empty: no token opens it."""
        return str(_reader.get("METRICS_TOKEN", "") or "")

    @property
    def METRICS_ALLOW(self) -> list[str]:
        """Addresses or CIDR networks that may read ``/metrics`` without a token (the client
        address as ``core.client_address`` resolves it behind trusted proxies). Default none.
        With neither this nor the token set, ``/metrics`` answers 404."""
        return [str(item) for item in _reader.list("METRICS_ALLOW", [])]

    @property
    def METRICS_MAX_CLIENTS(self) -> int:
        """How many registered clients get their own ``client`` label (the first registered);
        any other client id, registered later or not at all, is counted as ``other``. Default 100."""
        return _reader.int("METRICS_MAX_CLIENTS", 100)

    @property
    def REQUEST_ID_HEADER(self) -> str:
        """The header a trusted proxy (``VIGIL_TRUSTED_PROXIES``) may set to give a request its
        id; from anyone else it is ignored and an id is generated. Default ``X-Request-ID``."""
        return str(_reader.get("REQUEST_ID_HEADER", "X-Request-ID"))


ops_settings = OpsSettings()
