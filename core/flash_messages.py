"""Flash messages under a cookie name of ours (``VIGIL_MESSAGES_COOKIE_NAME``, ``core.cookies``).

Django's ``FallbackStorage`` as it is (a signed cookie, the session for what does not fit),
with the cookie's name taken from the settings rather than Django's fixed ``messages``, so
that under an https issuer it is a ``__Host-`` cookie like every other cookie Vigil sets.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.messages.storage.cookie import CookieStorage
from django.contrib.messages.storage.fallback import FallbackStorage
from django.contrib.messages.storage.session import SessionStorage


class NamedCookieStorage(CookieStorage):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cookie_name = settings.VIGIL_MESSAGES_COOKIE_NAME


class FlashMessageStorage(FallbackStorage):
    storage_classes = (NamedCookieStorage, SessionStorage)
