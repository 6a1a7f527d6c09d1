"""Vigil: the Django project package (settings, URLs, WSGI, Celery and its schedule)."""

from .celery import app as celery_app

__all__ = ["celery_app"]
