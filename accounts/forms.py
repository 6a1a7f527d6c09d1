"""Forms of the account pages (accessible labels and autocomplete hints for phones)."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _


class ErrorLinkedForm(forms.Form):
    """A form whose fields point at the page's error message (WCAG 2.2 SC 3.3.1, ARIA 1.2
    ``aria-describedby`` / ``aria-invalid``): a screen reader reads the error with the field."""

    def link_error(self, element_id: str) -> None:
        for field in self.fields.values():
            field.widget.attrs.update({"aria-invalid": "true", "aria-describedby": element_id})


class LoginForm(ErrorLinkedForm):
    username = forms.CharField(
        label=_("Username"), max_length=150,
        widget=forms.TextInput(attrs={"autocomplete": "username webauthn", "autofocus": True}),
    )
    password = forms.CharField(
        label=_("Password"), max_length=1024, strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )


class CodeForm(forms.Form):
    """A TOTP code (RFC 6238, 6 digits) or a recovery code."""

    method = forms.ChoiceField(choices=[("totp", _("Authenticator app")), ("recovery", _("Recovery code"))])
    code = forms.CharField(
        max_length=32,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "text", "autocapitalize": "off"}),
    )


class TotpConfirmForm(ErrorLinkedForm):
    code = forms.CharField(
        max_length=10,
        label=_("Code from the app"),
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "pattern": "[0-9 ]*"}),
    )


class RenameForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=100)


class RecoveryRegenerateForm(forms.Form):
    """The set of recovery codes to replace, as the profile page named it (``flows.recovery_regenerate``)."""

    form_token = forms.CharField(max_length=200, widget=forms.HiddenInput)
