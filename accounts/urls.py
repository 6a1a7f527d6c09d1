from django.urls import path

from . import manage_views, views

app_name = "accounts"

urlpatterns = [
    path("login/", views.login_view, name="login"),
    path("login/verify/", views.verify_view, name="verify"),
    path("login/passkey/options/", views.passkey_auth_options, name="passkey_auth_options"),
    path("login/passkey/", views.passkey_auth_verify, name="passkey_auth_verify"),
    path("logout/", views.logout_view, name="logout"),
    path("", manage_views.profile_view, name="profile"),
    path("mfa/", manage_views.mfa_setup_view, name="mfa_setup"),
    path("mfa/totp/", manage_views.totp_enroll_view, name="totp_enroll"),
    path("mfa/totp/remove/", manage_views.totp_remove_view, name="totp_remove"),
    path("mfa/recovery/", manage_views.recovery_regenerate_view, name="recovery_regenerate"),
    path("mfa/recovery/new/", manage_views.recovery_codes_view, name="recovery_codes"),
    path("passkeys/add/", manage_views.passkey_add_view, name="passkey_add"),
    path("passkeys/register/options/", manage_views.passkey_register_options, name="passkey_register_options"),
    path("passkeys/register/", manage_views.passkey_register_verify, name="passkey_register"),
    path("passkeys/<int:passkey_id>/rename/", manage_views.passkey_rename_view, name="passkey_rename"),
    path("passkeys/<int:passkey_id>/remove/", manage_views.passkey_remove_view, name="passkey_remove"),
    path("sessions/<int:session_id>/sign-out/", manage_views.browser_session_signout_view, name="session_sign_out"),
    path("devices/<int:session_id>/revoke/", manage_views.device_session_revoke_view, name="device_revoke"),
    path("password/", manage_views.password_change_view, name="password_change"),
]
