"""``/.well-known/assetlinks.json`` (Digital Asset Links) and
``/.well-known/apple-app-site-association`` (Apple ``webcredentials``): they let the
configured native apps use this site's passkeys (WebAuthn L3 §5.1.2 for native RPs).
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, JsonResponse

from idp.http_methods import allow_methods

from .app_settings import app_settings

RELATIONS = ["delegate_permission/common.handle_all_urls", "delegate_permission/common.get_login_creds"]


def asset_links() -> list[dict[str, Any]]:
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
    return {"webcredentials": {"apps": app_settings.APPLE_APP_IDS}}


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
