"""Root-level well-known documents owned by accounts (assetlinks, apple-app-site-association)."""

from django.urls import path

urlpatterns: list = []
