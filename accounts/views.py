"""Account pages: thin views over ``accounts.flows``."""

from __future__ import annotations

from django.contrib.auth import logout
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render, resolve_url
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_http_methods

from . import authstate
from .flows.login import LoginRefused, check_password_login
from .forms import LoginForm


def safe_next(request: HttpRequest, default: str = "accounts:profile") -> str:
    candidate = request.POST.get("next") or request.GET.get("next") or ""
    if candidate and url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return resolve_url(default)


@never_cache
@csrf_protect
@require_http_methods(["GET", "POST"])
def login_view(request: HttpRequest) -> HttpResponse:
    form = LoginForm(request.POST or None)
    error = ""
    if request.method == "POST" and form.is_valid():
        try:
            user = check_password_login(request, form.cleaned_data["username"], form.cleaned_data["password"])
        except LoginRefused as refused:
            error = refused.message
        else:
            authstate.establish(request, user, ["pwd"])
            return HttpResponseRedirect(safe_next(request))
    elif request.method == "POST":
        error = "Enter your username and password."
    status = 400 if error else 200
    return render(
        request, "accounts/login.html", {"form": form, "error": error, "next": safe_next(request)}, status=status
    )


@never_cache
@require_http_methods(["GET", "POST"])
def logout_view(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        logout(request)
        return render(request, "accounts/logged_out.html")
    return render(request, "accounts/logout_confirm.html")


@login_required
@never_cache
def profile_view(request: HttpRequest) -> HttpResponse:
    return render(request, "accounts/profile.html", {"auth": authstate.current(request)})
