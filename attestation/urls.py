from django.urls import path

app_name = "attestation"

urlpatterns: list = []
