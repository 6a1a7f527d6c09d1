from django.urls import path

from . import views

urlpatterns = [
    path(".well-known/ssf-configuration", views.ssf_configuration, name="ssf-configuration"),
    path("ssf/receive/<str:slug>", views.receive, name="ssf-receive"),
]
