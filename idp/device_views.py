"""The user's page of the device authorization grant (RFC 8628 §3.3): ``/device``. Thin: the
flow (``idp.flows.device_approval``) looks the code up, checks the sign-in and decides."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect

from accounts.security import csp
from core.http_methods import allow_methods

from .flows import device_approval
from .flows.device_approval import Step

_TEMPLATES = {Step.ENTER: "idp/device.html", Step.CONFIRM: "idp/device_confirm.html", Step.DONE: "idp/device_done.html"}


@never_cache
@csrf_protect
@csp
@allow_methods("GET", "POST")
def device(request: HttpRequest) -> HttpResponse:
    source = request.POST if request.method == "POST" else request.GET
    typed = str(source.get("user_code", ""))[:64]
    if not request.user.is_authenticated:
        return HttpResponseRedirect(device_approval.login_url(request, typed))
    page = device_approval.handle(request, typed, request.POST.get("decision") if request.method == "POST" else None)
    if page.step == Step.LOGIN:
        return HttpResponseRedirect(page.redirect_to)
    status = 429 if page.retry_after else 400 if page.error else 200
    response = render(request, _TEMPLATES[page.step], {**page.context, "error": page.error, "typed": typed},
                      status=status)
    if page.retry_after:
        response["Retry-After"] = str(page.retry_after)
    return response
