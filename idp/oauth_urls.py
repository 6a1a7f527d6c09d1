from django.urls import path

from . import device_views, views

urlpatterns = [
    path(".well-known/openid-configuration", views.openid_configuration, name="openid-configuration"),
    path(".well-known/oauth-authorization-server", views.openid_configuration, name="oauth-authorization-server"),
    path("jwks.json", views.jwks, name="jwks"),
    path("authorize", views.authorize, name="authorize"),
    path("token", views.token, name="token"),
    path("par", views.pushed_authorization_request, name="par"),
    path("userinfo", views.userinfo, name="userinfo"),
    path("introspect", views.introspect, name="introspect"),
    path("revoke", views.revoke, name="revoke"),
    path("logout", views.end_session, name="end-session"),
    path("device_authorization", views.device_authorization, name="device-authorization"),
    path("device", device_views.device, name="device"),
]
