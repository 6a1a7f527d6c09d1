from django.urls import path

from . import views

urlpatterns = [
    path("branding/logo.png", views.tenant_logo_view, name="branding-tenant-logo"),
    path("branding/clients/<str:client_id>/logo.png", views.client_logo, name="branding-client-logo"),
]
