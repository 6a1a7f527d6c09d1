"""Sign-in pages: thin views over ``accounts.flows`` (password, second factor, passkeys)."""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.utils.translation import gettext
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_http_methods, require_POST

from core.http_methods import raw_body

from . import authstate, known_devices, pending
from .flows import browser_sessions, passkey_login, policy, second_factor
from .flows.login import LoginRefused, after_first_factor, begin_step_up, check_password_login
from .forms import CodeForm, LoginForm
from .navigation import LoginParams, redirect_for, safe_next
from .security import csp
from .webauthn_rp import PasskeyError

__all__ = ["safe_next", "login_view", "verify_view", "logout_view", "passkey_auth_options", "passkey_auth_verify"]


def _status(error: str, retry_after: int | None) -> int:
    return 429 if retry_after else 400 if error else 200


def _render(request: HttpRequest, template: str, context: dict[str, Any], retry_after: int | None) -> HttpResponse:
    """The page, with 429 and ``Retry-After`` (RFC 9110 §10.2.3) when the attempt was throttled."""
    response = render(request, template, context, status=_status(context["error"], retry_after))
    if retry_after:
        response["Retry-After"] = str(retry_after)
    return response


@never_cache
@csrf_protect
@csp
@require_http_methods(["GET", "POST"])
@known_devices.issues_cookie
def login_view(request: HttpRequest) -> HttpResponse:
    """The authorize endpoint's login page: ``next``, ``acr``, ``force``, ``login_hint``."""
    params = LoginParams.from_request(request)
    if request.method == "GET" and not params.force:
        state = authstate.current(request)
        if state is not None:
            user = authstate.signed_in_user(request)
            decision = policy.decide(user, state.amr, params.acr)
            if decision.step == policy.VERIFY:
                begin_step_up(request, user)
            return redirect_for(decision, params)
    form = LoginForm(request.POST or None, initial={"username": params.login_hint})
    error, retry_after = "", None
    if request.method == "POST" and form.is_valid():
        try:
            user = check_password_login(request, form.cleaned_data["username"], form.cleaned_data["password"])
        except LoginRefused as refused:
            error, retry_after = refused.message, refused.retry_after
        else:
            return redirect_for(after_first_factor(request, user, ["pwd"], params.acr), params)
    elif request.method == "POST":
        error = gettext("Enter your username and password.")
    if error:
        form.link_error("login-error")
    context = {"form": form, "error": error, "params": params, "next": params.next}
    return _render(request, "accounts/login.html", context, retry_after)


def _pending_amr(request: HttpRequest, state: pending.Pending) -> list[str]:
    current = authstate.current(request)
    return current.amr if state.mode == "stepup" and current is not None else state.amr


@never_cache
@csrf_protect
@csp
@require_http_methods(["GET", "POST"])
@known_devices.issues_cookie
def verify_view(request: HttpRequest) -> HttpResponse:
    """Second factor after the password, or a step-up of the current session."""
    params = LoginParams.from_request(request)
    state = pending.get(request)
    user = state.user() if state else None
    if state is None or user is None:
        return HttpResponseRedirect(params.continue_url)
    decision = policy.decide(user, _pending_amr(request, state), params.acr)
    methods = decision.methods or policy.available_methods(user)
    if not methods:  # the factors went away meanwhile (e.g. an admin reset): start again
        pending.clear(request)
        return HttpResponseRedirect(params.continue_url)
    form = CodeForm(request.POST or None)
    error, retry_after = "", None
    if request.method == "POST":
        if form.is_valid() and form.cleaned_data["method"] in methods:
            try:
                second_factor.verify_code(request, state, form.cleaned_data["method"], form.cleaned_data["code"])
            except second_factor.SecondFactorRefused as refused:
                error, retry_after = refused.message, refused.retry_after
            else:
                return HttpResponseRedirect(params.continue_url)
        else:
            error = gettext("Enter a code.")
    context = {"form": form, "error": error, "params": params, "methods": methods, "step_up": state.mode == "stepup"}
    return _render(request, "accounts/verify.html", context, retry_after)


@never_cache
@csp
@require_http_methods(["GET", "POST"])
def logout_view(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        browser_sessions.sign_out_current(request)
        return render(request, "accounts/logged_out.html")
    return render(request, "accounts/logout_confirm.html")


# --- passkey sign-in (JSON, called by static/accounts/passkeys.js) -------------------------
def _json_body(request: HttpRequest) -> dict[str, Any]:
    try:
        data = json.loads(raw_body(request) or b"{}")
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: JSON nested too deep
        return {}
    return data if isinstance(data, dict) else {}


def _error(code: str, message: str, status: int = 400) -> JsonResponse:
    return JsonResponse({"error": code, "message": message}, status=status)


@never_cache
@csrf_protect
@require_POST
def passkey_auth_options(request: HttpRequest) -> HttpResponse:
    """``PublicKeyCredentialRequestOptions`` for passwordless sign-in or the second factor."""
    purpose = _json_body(request).get("purpose")
    if purpose == passkey_login.SECOND_FACTOR:
        state = pending.get(request)
        user = state.user() if state else None
        if user is None:
            return _error("no_pending_login", gettext("Start again from the sign-in page."))
        options = passkey_login.begin(request, purpose, user)
    else:
        options = passkey_login.begin(request, passkey_login.PASSWORDLESS)
    return HttpResponse(options, content_type="application/json")


@never_cache
@csrf_protect
@require_POST
@known_devices.issues_cookie
def passkey_auth_verify(request: HttpRequest) -> JsonResponse:
    data = _json_body(request)
    params = LoginParams.from_request(request, {k: str(data.get(k) or "") for k in ("next", "acr")})
    purpose = data.get("purpose")
    try:
        if purpose == passkey_login.SECOND_FACTOR:
            state = pending.get(request)
            user = state.user() if state else None
            if state is None or user is None:
                return _error("no_pending_login", gettext("Start again from the sign-in page."))
            passkey_login.as_second_factor(request, state, user, data.get("credential"))
        else:
            passkey_login.passwordless(request, data.get("credential"))
    except PasskeyError as error:
        return _error(error.code, error.message)
    return JsonResponse({"redirect": params.continue_url})

