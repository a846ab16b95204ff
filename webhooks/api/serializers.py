"""JSON shapes of the webhooks API (camelCase, like the rest of the API)."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from webhooks.addresses import UnsafeUrl, webhook_url_validate
from webhooks.models import EVENTS, WebhookDelivery, WebhookEndpoint


class EndpointSerializer(serializers.ModelSerializer[WebhookEndpoint]):
    events = serializers.ListField(child=serializers.ChoiceField(choices=list(EVENTS)))
    disabledReason = serializers.CharField(source="disabled_reason", read_only=True)
    failingSince = serializers.DateTimeField(
        source="failing_since", read_only=True, allow_null=True
    )
    previousSecretExpiresAt = serializers.DateTimeField(
        source="previous_secret_expires_at",
        read_only=True,
        allow_null=True,
        help_text="Until then the previous secret signs too (after a rotation).",
    )
    createdAt = serializers.DateTimeField(source="created_at", read_only=True)
    updatedAt = serializers.DateTimeField(source="updated_at", read_only=True)

    class Meta:
        model = WebhookEndpoint
        fields = [
            "id",
            "url",
            "description",
            "events",
            "enabled",
            "disabledReason",
            "failingSince",
            "previousSecretExpiresAt",
            "createdAt",
            "updatedAt",
        ]
        read_only_fields = fields


class EndpointWithSecretSerializer(EndpointSerializer):
    secret = serializers.CharField(
        read_only=True, help_text="The signing secret (`whsec_…`): shown in this answer only."
    )

    class Meta(EndpointSerializer.Meta):
        fields = [*EndpointSerializer.Meta.fields, "secret"]
        read_only_fields = fields


class EventsField(serializers.ListField):
    """Event types; an unknown one is refused with the list of those accepted."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(child=serializers.ChoiceField(choices=list(EVENTS)), **kwargs)

    def to_internal_value(self, data: Any) -> list[str]:
        if isinstance(data, list):
            unknown = [str(item)[:50] for item in data if item not in EVENTS]
            if unknown:
                raise serializers.ValidationError(
                    f"Unknown event {unknown[0]!r}; accepted: {', '.join(EVENTS)}."
                )
        events: list[str] = super().to_internal_value(data)
        return list(dict.fromkeys(events))


def _valid_url(value: str) -> str:
    try:
        return webhook_url_validate(value)
    except UnsafeUrl as refused:
        raise serializers.ValidationError(str(refused)) from None


class EndpointCreateSerializer(serializers.Serializer[Any]):
    url = serializers.CharField(
        max_length=2000, help_text="https://, resolving to a public address."
    )
    events = EventsField(required=False, min_length=1, help_text="Default: every event.")
    description = serializers.CharField(max_length=500, required=False, allow_blank=True)

    def validate_url(self, value: str) -> str:
        return _valid_url(value)


class EndpointUpdateSerializer(serializers.Serializer[Any]):
    url = serializers.CharField(max_length=2000, required=False)
    events = EventsField(required=False, min_length=1)
    description = serializers.CharField(max_length=500, required=False, allow_blank=True)
    enabled = serializers.BooleanField(required=False)

    def validate_url(self, value: str) -> str:
        return _valid_url(value)


class EndpointPageSerializer(serializers.Serializer[Any]):
    """A cursor page: follow `next` (a full URL) until it is null."""

    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = EndpointSerializer(many=True)


class DeliverySerializer(serializers.ModelSerializer[WebhookDelivery]):
    webhookId = serializers.CharField(source="webhook_id", read_only=True)
    eventType = serializers.CharField(source="event_type", read_only=True)
    createdAt = serializers.DateTimeField(source="created_at", read_only=True)

    class Meta:
        model = WebhookDelivery
        fields = ["webhookId", "eventType", "status", "createdAt"]
        read_only_fields = fields


class DeliveryEnvelopeSerializer(serializers.Serializer[Any]):
    delivery = DeliverySerializer()
