"""A per-request URL configuration for ``test_pages_only`` (``request.urlconf``, set by a
middleware): the paths of its root configuration, swapped between the marked and the unmarked view."""

from __future__ import annotations

from django.urls import path

from .test_pages_only import marked, unmarked

urlpatterns = [path("marked", unmarked), path("unmarked", marked)]
