"""Provider storage: consents (clients live in ``clients``, codes in ``sessions``, keys and
security events in ``core``)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from clients.models import Client


class Consent(models.Model):
    """Scopes a user has agreed to share with a client; asked again only for new scopes."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    client = models.ForeignKey(Client, on_delete=models.CASCADE)
    scopes = models.JSONField(default=list)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "idp_consent"
        constraints = [models.UniqueConstraint(fields=["user", "client"], name="uniq_consent_user_client")]

    def covers(self, scope: str) -> bool:
        return set(scope.split()) <= set(self.scopes)
