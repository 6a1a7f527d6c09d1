"""The user model: custom from the first migration so identity fields can grow."""

from __future__ import annotations

import uuid

from django.contrib.auth.models import AbstractUser
from django.db import models


class User(AbstractUser):
    """A person who signs in. ``subject`` is the stable, non-reassignable OIDC ``sub``."""

    subject = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    email_verified = models.BooleanField(default=False)
    require_mfa = models.BooleanField(
        default=False, help_text="Require a second factor for this user whatever the client policy."
    )

    class Meta:
        db_table = "accounts_user"

    def get_user_id(self) -> str:
        """Authlib's hook: the ``sub`` claim."""
        return str(self.subject)
