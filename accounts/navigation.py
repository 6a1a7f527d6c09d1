"""Where the login flow goes next: the parameters the authorize endpoint passes to the login
page (``next``, ``acr``, ``force``, ``login_hint``) carried safely through every step."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponseRedirect
from django.shortcuts import resolve_url
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme

from .flows import policy


def safe_next(request: HttpRequest, default: str = "accounts:profile", value: str | None = None) -> str:
    """``next`` if it stays on this site, else ``default`` (no open redirect). A ``value`` from
    JSON may hold a lone surrogate, which is no URL (quoting it for a redirect would raise)."""
    candidate = value if value is not None else (request.POST.get("next") or request.GET.get("next") or "")
    if candidate and _is_text(candidate) and url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return resolve_url(default)


def _is_text(value: str) -> bool:
    """Whether ``value`` is Unicode text, that is encodable as UTF-8 (no lone surrogate)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@dataclass(frozen=True)
class LoginParams:
    next: str
    acr: str
    force: bool
    login_hint: str

    @classmethod
    def from_request(cls, request: HttpRequest, data: dict[str, str] | None = None) -> LoginParams:
        source = data if data is not None else (request.POST if request.method == "POST" else request.GET)
        return cls(
            next=safe_next(request, value=str(source.get("next") or "")),
            acr=policy.clean_acr(str(source.get("acr") or "")),
            force=str(source.get("force") or "") == "1",
            login_hint=str(source.get("login_hint") or "")[:150],
        )

    def query(self, **extra: str) -> str:
        values = {"next": self.next, "acr": self.acr, **extra}
        return urlencode({k: v for k, v in values.items() if v})

    @property
    def continue_url(self) -> str:
        """Back to the login page without ``force``: it re-decides and ends at ``next``."""
        return reverse("accounts:login") + "?" + self.query()


def redirect_for(decision: policy.Decision, params: LoginParams) -> HttpResponseRedirect:
    return HttpResponseRedirect(url_for(decision, params))


def url_for(decision: policy.Decision, params: LoginParams) -> str:
    if decision.step == policy.DONE:
        return params.next
    if decision.step == policy.VERIFY:
        return reverse("accounts:verify") + "?" + params.query()
    if decision.step == policy.ENROLL:
        query = urlencode({"next": params.continue_url, "kind": decision.enroll})
        return reverse("accounts:mfa_setup") + "?" + query
    return reverse("accounts:login") + "?" + params.query()


def reauth_url(request: HttpRequest, acr: str = "", force: bool = True) -> str:
    """Login again (``force``) or step up (``acr``), then back here (or to the account page)."""
    back = request.get_full_path() if request.method == "GET" else reverse("accounts:profile")
    query = {"next": back, "acr": acr, "force": "1" if force else ""}
    return reverse("accounts:login") + "?" + urlencode({k: v for k, v in query.items() if v})
