"""Root-level well-known documents owned by accounts (assetlinks, apple-app-site-association)."""

from django.urls import path

from . import wellknown

urlpatterns = [
    path(".well-known/assetlinks.json", wellknown.asset_links_view, name="assetlinks"),
    path(
        ".well-known/apple-app-site-association",
        wellknown.apple_app_site_association_view,
        name="apple-app-site-association",
    ),
]
