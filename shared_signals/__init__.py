"""OpenID Shared Signals Framework 1.0: Vigil as a Transmitter and as a Receiver of
Security Event Tokens (RFC 8417) carrying CAEP events, pushed over HTTP (RFC 8935).

Modules: ``models`` (receivers, transmitters, deliveries, received SETs),
``set_tokens`` (building and verifying SETs), ``transmitter`` (``emit`` and the CAEP
helpers other apps call), ``delivery`` + ``tasks`` (Celery push with retries),
``receiver`` (the push endpoint's flow and the event -> action policy), ``views``.
"""
