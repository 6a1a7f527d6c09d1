"""URL map. Protocol endpoints live at the issuer root, as discovery advertises them."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

urlpatterns = [
    path("", include("idp.oauth_urls")),
    path("", include("accounts.wellknown_urls")),
    path("", include("shared_signals.urls")),
    path("accounts/", include("accounts.urls")),
    path("accounts/", include("clients.urls")),  # logos shown on the sign-in pages
    path("accounts/i18n/", include("django.conf.urls.i18n")),  # set_language: the pages' language switcher
    path("attestation/", include("attestation.urls")),
    path("", include("idp.usage_urls")),
    path("admin/", admin.site.urls),
    path("api/schema", SpectacularAPIView.as_view(), name="openapi-schema"),
    path("", include("ops.urls")),
]
