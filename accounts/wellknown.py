"""``/.well-known/assetlinks.json`` (Digital Asset Links) and
``/.well-known/apple-app-site-association`` (Apple ``webcredentials``): they let the
native apps use this site's passkeys (WebAuthn L3 §5.1.2 for native RPs).

Both list the apps of ``ACCOUNTS_ASSET_LINKS`` / ``ACCOUNTS_APPLE_APP_IDS`` and every app
registered for an active client (``create_client --android-package/--ios-app-id``, the
admin): an Android app with its signing-certificate digests as colon-separated upper-case
hex, an iOS app as ``TEAMID.bundle.id``.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, JsonResponse

from attestation.android.digests import normalise_digest
from attestation.models import Platform, RegisteredApp
from core.http_methods import allow_methods

from .app_settings import app_settings

RELATIONS = ["delegate_permission/common.handle_all_urls", "delegate_permission/common.get_login_creds"]


def _fingerprint(digest: str) -> str | None:
    """Digital Asset Links' spelling of a SHA-256 digest: ``AA:BB:...`` (None if unusable)."""
    try:
        raw = normalise_digest(digest)
    except ValueError:
        return None
    return ":".join(f"{byte:02X}" for byte in raw)


def _registered_apps(platform: str) -> list[RegisteredApp]:
    return list(RegisteredApp.objects.filter(platform=platform, client__is_active=True).order_by("pk"))


def _registered_android_statements(configured: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Registered Android apps, their fingerprints merged into a configured statement of the
    same package rather than listed twice."""
    by_package = {s["target"].get("package_name"): s for s in configured
                  if s.get("target", {}).get("namespace") == "android_app"}
    added = []
    for app in _registered_apps(Platform.ANDROID):
        prints = [p for p in map(_fingerprint, app.android_signing_cert_digests or []) if p]
        if not prints:
            continue  # an app with no digest matches nothing (docs/attestation.md §5)
        statement = by_package.get(app.android_package_name)
        if statement is None:
            statement = {"relation": list(RELATIONS), "target": {
                "namespace": "android_app", "package_name": app.android_package_name, "sha256_cert_fingerprints": []}}
            by_package[app.android_package_name] = statement
            added.append(statement)
        known = statement["target"].setdefault("sha256_cert_fingerprints", [])
        known.extend(p for p in prints if p not in known)
    return added


def asset_links() -> list[dict[str, Any]]:
    statements = _configured_statements()
    return statements + _registered_android_statements(statements)


def _configured_statements() -> list[dict[str, Any]]:
    statements = []
    for app in app_settings.ASSET_LINKS:
        if "target" in app:  # already a full statement
            statements.append(app)
            continue
        statements.append({
            "relation": list(app.get("relation") or RELATIONS),
            "target": {
                "namespace": "android_app",
                "package_name": str(app["package_name"]),
                "sha256_cert_fingerprints": [str(f).upper() for f in app.get("sha256_cert_fingerprints", [])],
            },
        })
    return statements


def apple_app_site_association() -> dict[str, Any]:
    registered = [app.app_id for app in _registered_apps(Platform.IOS)]
    return {"webcredentials": {"apps": list(dict.fromkeys([*app_settings.APPLE_APP_IDS, *registered]))}}


def _json(data: Any) -> JsonResponse:
    response = JsonResponse(data, safe=False)
    response["Cache-Control"] = "public, max-age=3600"
    return response


@allow_methods("GET")
def asset_links_view(request: HttpRequest) -> JsonResponse:
    return _json(asset_links())


@allow_methods("GET")
def apple_app_site_association_view(request: HttpRequest) -> JsonResponse:
    return _json(apple_app_site_association())
