"""OpenID Connect Back-Channel Logout 1.0: when a session ends by any path, the client that
registered a ``backchannel_logout_uri`` receives a signed logout token (``logout_token``,
§2.4) from a Celery task with retries (``idp.tasks.send_backchannel_logout``).

``listener`` subscribes to the one revocation announcement
(``sessions.flows.revocation.session_revoked``), ``logout_token`` builds and signs the token,
``delivery`` POSTs it (§2.5) and judges the answer (§2.8).
"""
