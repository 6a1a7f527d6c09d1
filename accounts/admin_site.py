"""The administration site: staff only, and only with a second factor.

A staff member reaches the admin once this browser session proved two factors (``acr``
``urn:vigil:acr:mfa`` or stronger: password + TOTP or recovery code, or a passkey with user
verification), as django-otp's ``OTPAdminSite`` demands a verified OTP device, but accepting
passkeys too. Signing in goes through Vigil's login (throttled, every decision an event); a
staff member signed in with a password alone is sent to add the second factor.

``VIGIL_ADMIN_ALLOW_SINGLE_FACTOR`` lifts the second-factor rule for development only: it
is honoured only with ``DJANGO_DEBUG`` on, and system check ``accounts.E005`` refuses it
otherwise.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden, HttpResponseRedirect
from django.urls import reverse
from django.utils.http import urlencode

from core.acr import ACR_MFA, acr_satisfies
from core.conf import SettingsReader

from . import authstate
from .navigation import safe_next

_reader = SettingsReader("VIGIL_")


def single_factor_requested() -> bool:
    """Whether ``VIGIL_ADMIN_ALLOW_SINGLE_FACTOR`` is set (read as a boolean, "0" is off)."""
    return _reader.bool("ADMIN_ALLOW_SINGLE_FACTOR", False)


def single_factor_allowed() -> bool:
    """The development exception, honoured only with DEBUG on."""
    return single_factor_requested() and bool(settings.DEBUG)


def has_second_factor(request: HttpRequest) -> bool:
    """Whether this browser session proved two factors."""
    state = authstate.current(request)
    return state is not None and acr_satisfies(state.acr, ACR_MFA)


class SecondFactorAdminSite(admin.AdminSite):
    """``admin.site``: ``has_permission`` (active staff, Django's rule) also demands the second factor."""

    def is_staff(self, request: HttpRequest) -> bool:
        return super().has_permission(request)

    def has_permission(self, request: HttpRequest) -> bool:
        return self.is_staff(request) and (has_second_factor(request) or single_factor_allowed())

    def logout(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:  # type: ignore[override]
        """Vigil's sign-out, not Django's bare ``logout()``: the browser session's record ends,
        the app sessions born from this sign-in are revoked and it is recorded, as on the
        account pages."""
        from .views import logout_view  # the views import the admin's models: at call time

        return logout_view(request)

    def password_change(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:  # type: ignore[override]
        """Vigil's page: the current password under the sign-in throttle, the other sessions
        signed out, the apps revoked, the change announced (CAEP). Django's form did none of it."""
        return HttpResponseRedirect(reverse("accounts:password_change"))

    def password_change_done(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:  # type: ignore[override]
        return HttpResponseRedirect(reverse("accounts:profile"))

    def login(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        """Staff sign in through Vigil's login, not the admin's password-only form; a
        signed-in user without staff rights gets a 403, not a loop."""
        target = safe_next(request, default="admin:index")
        if request.user.is_authenticated and not self.is_staff(request):
            return HttpResponseForbidden("This account cannot use the administration site.")
        if self.has_permission(request):
            return HttpResponseRedirect(target)
        query = {"next": target} if single_factor_allowed() else {"next": target, "acr": ACR_MFA}
        return HttpResponseRedirect(f"{reverse('accounts:login')}?{urlencode(query)}")
