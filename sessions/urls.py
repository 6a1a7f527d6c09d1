"""URLs of the sessions app: the usage-report API of risk evaluation."""

from django.urls import path

from .api.views import UsageView

app_name = "device_sessions"

urlpatterns: list = [
    path("usage", UsageView.as_view(), name="usage"),
]
