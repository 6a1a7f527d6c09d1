"""The usage-report API of risk evaluation (``POST /usage``), served here because the
authorization server authenticates the reporting client (``idp.usage_api.views``)."""

from django.urls import path

from .usage_api.views import UsageView

app_name = "risk"

urlpatterns: list = [
    path("usage", UsageView.as_view(), name="usage"),
]
