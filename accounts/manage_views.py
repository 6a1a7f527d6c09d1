"""The account page and factor management: thin views over ``accounts.flows``."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import PasswordChangeForm
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import urlencode
from django.utils.translation import gettext
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from core.http_methods import raw_body
from sessions.flows.revocation import Reason

from . import authstate, known_devices, throttle
from .authstate import AuthenticatedHttpRequest
from .flows import (
    attempts,
    browser_sessions,
    device_sessions,
    factors,
    passkeys,
    password,
    policy,
    recovery,
    recovery_display,
    recovery_regenerate,
    totp,
    totp_enroll,
)
from .flows.passkeys import FactorRemovalRefused
from .forms import RecoveryRegenerateForm, RenameForm, TotpConfirmForm
from .guards import recent_auth_required
from .navigation import safe_next
from .security import csp
from .webauthn_rp import PasskeyError


def _profile() -> HttpResponseRedirect:
    return HttpResponseRedirect(reverse("accounts:profile"))


@login_required
@never_cache
@csp
@require_GET
def profile_view(request: AuthenticatedHttpRequest) -> HttpResponse:
    user = request.user
    context = {
        "auth": authstate.current(request),
        "totp": totp.confirmed_device(user),
        "recovery_remaining": recovery.remaining(user),
        "recovery_form_token": recovery_regenerate.form_token(user),
        "passkeys": passkeys.list_for(user),
        "browser_sessions": browser_sessions.list_for(request, user),
        "device_sessions": device_sessions.list_for(user),
        "mfa_required": policy.policy_requires_mfa(user),
    }
    return render(request, "accounts/profile.html", context)


@login_required
@never_cache
@csp
@require_GET
def mfa_setup_view(request: AuthenticatedHttpRequest) -> HttpResponse:
    """A second factor is required: choose an authenticator app or a passkey."""
    kind = "passkey" if request.GET.get("kind") == "passkey" else "any"
    next_url = safe_next(request)
    query = urlencode({"next": next_url})
    return render(request, "accounts/mfa_setup.html", {"kind": kind, "query": query, "next": next_url})


@login_required
@never_cache
@csrf_protect
@csp
@recent_auth_required()
@require_http_methods(["GET", "POST"])
@known_devices.issues_cookie  # a required factor's enrollment completes the sign-in
def totp_enroll_view(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Show the secret (QR + text); a first valid code confirms it (RFC 6238). Post/Redirect/Get:
    a confirmation, or the same one sent again, is answered 303 (``flows.totp_enroll``)."""
    user = request.user
    form = TotpConfirmForm(request.POST or None)
    error = ""
    if request.method == "POST":
        result = totp_enroll.confirm(request, user, form.cleaned_data["code"]) if form.is_valid() else None
        if result is not None and result.outcome is not totp_enroll.Outcome.REFUSED:
            return _after_confirmation(request, result)
        error = gettext("That code is not valid, or too many attempts. Wait for a new code and try again.")
        form.link_error("totp-error")
    device = totp.pending_device(user)
    context = {
        "form": form, "error": error, "qr_svg": totp.qr_svg(device), "secret": totp.secret_base32(device),
        "otpauth_uri": totp.provisioning_uri(device), "next": safe_next(request),
    }
    return render(request, "accounts/totp_enroll.html", context, status=400 if error else 200)


def _after_confirmation(request: HttpRequest, result: totp_enroll.Confirmation) -> HttpResponse:
    """The confirmation put its proof and codes in the session (``totp_enroll``); a repeat
    writes nothing to the session: the codes the confirmation stored stay there."""
    next_url = safe_next(request)
    if result.outcome is totp_enroll.Outcome.ALREADY_SET_UP:
        messages.info(request, gettext(
            "That code is from the authenticator app you already set up, which still works: nothing was changed. "
            "To replace it, enter a code for the new key instead."
        ))
    if result.outcome is totp_enroll.Outcome.CONFIRMED and not result.recovery_codes:
        return HttpResponseRedirect(next_url, status=303)
    return HttpResponseRedirect(_codes_page(next_url), status=303)


def _codes_page(next_url: str) -> str:
    """Where new recovery codes are shown once (``recovery_codes_view``): the flow that made them
    kept them in this session, in its own transaction (``recovery_display.keep``)."""
    return reverse("accounts:recovery_codes") + "?" + urlencode({"next": next_url})


@login_required
@never_cache
@csrf_protect
@recent_auth_required()
@require_POST
def totp_remove_view(request: AuthenticatedHttpRequest) -> HttpResponse:
    try:
        factors.remove_totp(request, request.user)
    except FactorRemovalRefused as refused:
        messages.error(request, refused.message)
    else:
        messages.success(request, gettext("The authenticator app was removed."))
    return _profile()


@login_required
@never_cache
@csrf_protect
@csp
@recent_auth_required()
@require_POST
def recovery_regenerate_view(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Post/Redirect/Get: new codes are kept in this session and shown once by the codes page;
    the same form sent again goes there too and changes nothing (``flows.recovery_regenerate``)."""
    form = RecoveryRegenerateForm(request.POST)
    token = form.cleaned_data["form_token"] if form.is_valid() else ""
    result = recovery_regenerate.regenerate(request, request.user, token)
    if result.outcome is recovery_regenerate.Outcome.NO_SECOND_FACTOR:
        messages.error(request, gettext("Add an authenticator app or a passkey first."))
        return _profile()
    if result.outcome is recovery_regenerate.Outcome.REFUSED:
        messages.error(request, gettext("That page was out of date, so no new codes were made. Try again."))
        return _profile()
    return HttpResponseRedirect(_codes_page(reverse("accounts:profile")), status=303)


@login_required
@never_cache
@csp
@require_GET
def recovery_codes_view(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Codes generated by a TOTP confirmation, a passkey registration or a regeneration, shown
    once and only while still stored (``flows.recovery_display``); a reload, or a second load
    racing the first, says they were shown; with nothing to say the page sends the browser on."""
    shown, next_url = recovery_display.take(request.session, request.user), safe_next(request)
    if shown.display is recovery_display.Display.NOTHING:
        return HttpResponseRedirect(next_url)
    context = {"codes": shown.codes, "next": next_url, "profile": reverse("accounts:profile")}
    return render(request, "accounts/recovery_codes.html", context)


@login_required
@never_cache
@csrf_protect
@csp
@recent_auth_required()
@require_GET
def passkey_add_view(request: AuthenticatedHttpRequest) -> HttpResponse:
    return render(request, "accounts/passkey_add.html", {"next": safe_next(request)})


@login_required
@never_cache
@csrf_protect
@recent_auth_required(json=True)
@require_POST
def passkey_register_options(request: AuthenticatedHttpRequest) -> HttpResponse:
    return HttpResponse(passkeys.begin(request, request.user), content_type="application/json")


@login_required
@never_cache
@csrf_protect
@recent_auth_required(json=True)
@require_POST
def passkey_register_verify(request: AuthenticatedHttpRequest) -> JsonResponse:
    try:
        data: Any = json.loads(raw_body(request) or b"{}")
        if not isinstance(data, dict):
            raise ValueError
    except (ValueError, RecursionError):  # RecursionError: JSON nested too deep
        return JsonResponse({"error": "malformed", "message": str(PasskeyError.MESSAGE)}, status=400)
    try:
        result = passkeys.finish(request, request.user, data.get("credential"), str(data.get("name") or ""))
    except PasskeyError as error:
        return JsonResponse({"error": error.code, "message": error.message}, status=400)
    next_url = safe_next(request, value=str(data.get("next") or ""))
    if result.recovery_codes:
        next_url = _codes_page(next_url)
    return JsonResponse({"redirect": next_url, "passkey": result.passkey.pk})


@login_required
@never_cache
@csrf_protect
@recent_auth_required()
@require_POST
def passkey_rename_view(request: AuthenticatedHttpRequest, passkey_id: int) -> HttpResponse:
    form = RenameForm(request.POST)
    if form.is_valid() and passkeys.rename(request, request.user, passkey_id, form.cleaned_data["name"]):
        messages.success(request, gettext("Passkey renamed."))
    return _profile()


@login_required
@never_cache
@csrf_protect
@recent_auth_required()
@require_POST
def passkey_remove_view(request: AuthenticatedHttpRequest, passkey_id: int) -> HttpResponse:
    try:
        if passkeys.remove(request, request.user, passkey_id):
            messages.success(request, gettext("Passkey removed."))
    except FactorRemovalRefused as refused:
        messages.error(request, refused.message)
    return _profile()


@login_required
@never_cache
@csrf_protect
@require_POST
def browser_session_signout_view(request: AuthenticatedHttpRequest, session_id: int) -> HttpResponse:
    if browser_sessions.sign_out(request, request.user, session_id):
        messages.success(request, gettext("That browser was signed out."))
    return _profile()


@login_required
@never_cache
@csrf_protect
@require_POST
def device_session_revoke_view(request: AuthenticatedHttpRequest, session_id: int) -> HttpResponse:
    if device_sessions.revoke(request.user, session_id, Reason.USER_SIGNED_OUT, request=request):
        messages.success(request, gettext("That app was signed out."))
    return _profile()


@login_required
@never_cache
@csrf_protect
@csp
@require_http_methods(["GET", "POST"])
def password_change_view(request: AuthenticatedHttpRequest) -> HttpResponse:
    form = PasswordChangeForm(request.user, request.POST or None)
    if request.method == "POST":
        try:
            changed = password.attempt_change(request, request.user, form)
        except throttle.Throttled as refused:
            form.add_error(None, attempts.throttled_message(refused.retry_after))
            response = render(request, "accounts/password_change.html", {"form": form}, status=429)
            response["Retry-After"] = str(refused.retry_after)
            return response
        if changed:
            messages.success(request, gettext("Password changed. Your other sessions were signed out."))
            return _profile()
    return render(request, "accounts/password_change.html", {"form": form}, status=400 if form.errors else 200)
