"""Recent, strong enough authentication before changing factors ("sudo mode").

A factor change needs an authentication at most ``ACCOUNTS_REAUTH_SECONDS`` old and, when
the user has a second factor, a multi-factor session: otherwise a stolen password-only or
stale session could add the attacker's own factor.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.utils import timezone

from core.acr import ACR_MFA, acr_satisfies

from . import authstate
from .app_settings import app_settings
from .flows import policy
from .navigation import reauth_url


def reauth_needed(request: HttpRequest) -> str | None:
    """The login URL to send the user to, or None when the session is good enough."""
    state = authstate.current(request)
    if state is None or timezone.now().timestamp() - state.auth_time > app_settings.REAUTH_SECONDS:
        return reauth_url(request, force=True)
    if policy.has_second_factor(authstate.signed_in_user(request)) and not acr_satisfies(state.acr, ACR_MFA):
        return reauth_url(request, acr=ACR_MFA, force=False)
    return None


def recent_auth_required(json: bool = False) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            url = reauth_needed(request)
            if url is None:
                return view(request, *args, **kwargs)
            if json:
                return JsonResponse({"error": "reauthentication_required", "redirect": url}, status=403)
            return HttpResponseRedirect(url)

        return wrapped

    return decorator
