"""Serializers of the attestation JSON API."""

from __future__ import annotations

from rest_framework import serializers

from ..models import ChallengePurpose


class ChallengeRequestSerializer(serializers.Serializer):
    client_id = serializers.CharField(min_length=1, max_length=100)
    purpose = serializers.ChoiceField(choices=ChallengePurpose.choices)


class ChallengeResponseSerializer(serializers.Serializer):
    attestation_challenge = serializers.CharField(help_text="Also in the OAuth-Client-Attestation-Challenge header.")
    purpose = serializers.ChoiceField(choices=ChallengePurpose.choices)
    expires_in = serializers.IntegerField(help_text="Seconds the challenge may be redeemed.")
