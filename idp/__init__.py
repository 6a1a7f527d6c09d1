"""Vigil: project package and the OAuth 2.0 / OpenID Connect provider app."""

from .celery import app as celery_app

__all__ = ["celery_app"]
