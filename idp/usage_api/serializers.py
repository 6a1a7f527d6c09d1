"""Serializers of the usage-report API."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers


class UsageReportSerializer(serializers.Serializer):
    sub = serializers.CharField(max_length=64, required=False, allow_blank=True,
                                help_text="The user's OIDC subject. Give sub or sid.")
    sid = serializers.CharField(max_length=64, required=False, allow_blank=True,
                                help_text="The session id (the sid claim of our tokens). Give sub or sid.")
    bytes = serializers.IntegerField(min_value=0, max_value=2**62, help_text="Bytes the user moved during the period.")
    period_start = serializers.DateTimeField(help_text="RFC 3339 date-time.")
    period_end = serializers.DateTimeField(help_text="RFC 3339 date-time; the report counts on this UTC day.")
    report_id = serializers.CharField(max_length=64, required=False, allow_blank=True, default="",
                                      help_text="Your id of this report: a retry with the same id counts once.")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not attrs.get("sub") and not attrs.get("sid"):
            raise serializers.ValidationError("give sub or sid")
        return attrs


class UsageAcceptedSerializer(serializers.Serializer):
    accepted = serializers.BooleanField()
    day = serializers.DateField(help_text="The UTC day the report was counted on.")
    duplicate = serializers.BooleanField(help_text="A report with this report_id was already counted.")
