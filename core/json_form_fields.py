"""Admin form fields for JSON columns of one shape: a list of strings (redirect URIs, scopes,
audiences...) or an object (a JWKS, scope descriptions).

Django's ``forms.JSONField`` takes any JSON: a number or ``true`` where a list is meant reached
the form's checks (``for uri in 5``: a 500), a string or an object was stored as it came (and
iterated by character or by key wherever the list is read), and an emptied optional field
became NULL in a NOT NULL column (an IntegrityError: a 500). These refuse any other shape as
the field's error and read an empty field (or ``null``) as the empty list or object.
"""

from __future__ import annotations

from typing import Any

from django import forms


class JSONList(forms.JSONField):
    """A JSON list of strings; empty or ``null``: ``[]`` (then required fields say so)."""

    default_error_messages = {"shape": 'Enter a JSON list of strings, e.g. ["one", "two"].'}

    def to_python(self, value: Any) -> Any:
        converted = super().to_python(value)
        if converted is None:
            return []
        if not isinstance(converted, list) or not all(isinstance(item, str) for item in converted):
            raise forms.ValidationError(self.error_messages["shape"], code="shape")
        return converted


class JSONObject(forms.JSONField):
    """A JSON object; empty or ``null``: ``{}``."""

    default_error_messages = {"shape": 'Enter a JSON object, e.g. {"name": "value"}.'}

    def to_python(self, value: Any) -> Any:
        converted = super().to_python(value)
        if converted is None:
            return {}
        if not isinstance(converted, dict):
            raise forms.ValidationError(self.error_messages["shape"], code="shape")
        return converted
