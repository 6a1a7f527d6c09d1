"""Delivering an authorization response (success or error) in the requested response mode.

- ``query``: a 302 with the parameters added to the redirect URI's query (RFC 6749 §4.1.2).
- ``fragment``: a 302 with the parameters in the fragment (OAuth 2.0 Multiple Response
  Type Encoding Practices §2.1; valid for ``response_type=code``).
- ``form_post``: a 200 HTML page whose form POSTs the parameters to the redirect URI
  (OAuth 2.0 Form Post Response Mode §2). It submits itself with one inline script allowed
  by its hash in the page's Content-Security-Policy (no ``unsafe-inline``); without
  JavaScript, a ``<noscript>`` button submits it.

Every response carries ``iss`` (RFC 9207 §2). The redirect URI has been checked against
the client's registration before anything reaches here.
"""

from __future__ import annotations

import base64
import hashlib
from urllib.parse import urlencode

from authlib.common.urls import add_params_to_uri
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string

from core.app_settings import app_settings

from .authorize_params import ResponseMode

Params = list[tuple[str, str]]

#: The form_post page's only script; the CSP allows exactly this text by its SHA-256.
FORM_POST_SCRIPT = 'document.getElementById("vigil-form-post").submit();'
_SCRIPT_HASH = base64.b64encode(hashlib.sha256(FORM_POST_SCRIPT.encode()).digest()).decode()
FORM_POST_CSP = (
    f"default-src 'none'; script-src 'sha256-{_SCRIPT_HASH}'; style-src 'unsafe-inline'; "
    "base-uri 'none'; frame-ancestors 'none'"
)


def client_redirect(location: str) -> HttpResponse:
    """A 302 to a registered redirect URI; unlike HttpResponseRedirect it allows the
    private-use schemes of native apps (RFC 8252 §7.1), already checked for exact match."""
    response = HttpResponse(status=302)
    response["Location"] = location
    return response


def deliver(request: HttpRequest, redirect_uri: str, params: Params, mode: ResponseMode) -> HttpResponse:
    """The response to the client: ``params`` plus ``iss``, encoded as ``mode`` says."""
    full = [(name, value) for name, value in params if value is not None]
    full.append(("iss", app_settings.ISSUER))
    if mode is ResponseMode.FORM_POST:
        return _form_post(request, redirect_uri, full)
    if mode is ResponseMode.FRAGMENT:
        return client_redirect(f"{redirect_uri}#{urlencode(full)}")
    return client_redirect(add_params_to_uri(redirect_uri, full))


def _form_post(request: HttpRequest, redirect_uri: str, params: Params) -> HttpResponse:
    body = render_to_string(
        "idp/form_post.html", {"action": redirect_uri, "params": params, "script": FORM_POST_SCRIPT}, request=request
    )
    response = HttpResponse(body, content_type="text/html; charset=utf-8")
    response["Content-Security-Policy"] = FORM_POST_CSP
    response["Referrer-Policy"] = "no-referrer"
    response["Cache-Control"] = "no-store"
    return response
