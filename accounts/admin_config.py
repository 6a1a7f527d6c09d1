"""``django.contrib.admin`` with the second-factor site (``accounts.admin_site``) as
``admin.site``. Its own module: app configs are imported before any model exists."""

from __future__ import annotations

from django.contrib.admin.apps import AdminConfig


class VigilAdminConfig(AdminConfig):
    default_site = "accounts.admin_site.SecondFactorAdminSite"
