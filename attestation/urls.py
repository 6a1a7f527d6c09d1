from django.urls import path

from .api.views import ChallengeView

app_name = "attestation"

urlpatterns: list = [
    path("challenge", ChallengeView.as_view(), name="challenge"),
]
