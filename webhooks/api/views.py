"""HTTP adapters of the webhooks app: parse, call one service, shape the answer."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from infra.api import NewestFirstPagination
from infra.throttling import ScopedUserRateThrottle
from photos.api.views import ERRORS, PAGE_PARAMETERS, RETRY_AFTER, THROTTLED, UNSUPPORTED
from webhooks.api.serializers import (
    DeliveryEnvelopeSerializer,
    EndpointCreateSerializer,
    EndpointPageSerializer,
    EndpointSerializer,
    EndpointUpdateSerializer,
    EndpointWithSecretSerializer,
)
from webhooks.models import WebhookEndpoint
from webhooks.services import (
    EndpointLimit,
    endpoint_create,
    endpoint_for_owner,
    endpoint_ping,
    endpoint_rotate_secret,
    endpoint_update,
)

ENDPOINT_ID = OpenApiParameter("endpoint_id", OpenApiTypes.UUID, OpenApiParameter.PATH)


class WebhookRateThrottle(ScopedUserRateThrottle):
    """Creating, testing and rotating endpoints: THROTTLE_WEBHOOK_RATE per user."""

    scope = "webhook"
    rate_setting = "THROTTLE_WEBHOOK_RATE"


class WebhookListView(APIView):
    throttle_classes = [WebhookRateThrottle]  # counts POSTs only

    @extend_schema(
        parameters=PAGE_PARAMETERS,
        responses={200: EndpointPageSerializer, **ERRORS},
        operation_id="webhooks_list",
    )
    def get(self, request: Request) -> Response:
        """The caller's webhook endpoints, newest first (cursor-paginated)."""
        paginator = NewestFirstPagination()
        page = paginator.paginate_queryset(
            WebhookEndpoint.objects.filter(owner=request.user.pk), request, view=self
        )
        return paginator.get_paginated_response(EndpointSerializer(page, many=True).data)

    @extend_schema(
        request={"application/json": EndpointCreateSerializer},
        parameters=[RETRY_AFTER],
        responses={201: EndpointWithSecretSerializer, **ERRORS, **UNSUPPORTED, **THROTTLED},
    )
    def post(self, request: Request) -> Response:
        """Register an endpoint. The answer carries its signing secret, shown this once."""
        data = _valid(EndpointCreateSerializer, request.data)
        try:
            endpoint = endpoint_create(
                owner=request.user,
                url=data["url"],
                events=data.get("events"),
                description=data.get("description", ""),
            )
        except EndpointLimit as limit:
            return Response({"error": str(limit)}, status=status.HTTP_400_BAD_REQUEST)
        body = EndpointWithSecretSerializer(endpoint).data
        return Response(body, status=status.HTTP_201_CREATED)


class WebhookDetailView(APIView):
    @extend_schema(parameters=[ENDPOINT_ID], responses={200: EndpointSerializer, **ERRORS})
    def get(self, request: Request, endpoint_id: str) -> Response:
        """One of the caller's endpoints (never its secret)."""
        endpoint = endpoint_for_owner(owner=request.user, endpoint_id=endpoint_id)
        return Response(EndpointSerializer(endpoint).data)

    @extend_schema(
        parameters=[ENDPOINT_ID],
        request={"application/json": EndpointUpdateSerializer},
        responses={200: EndpointSerializer, **ERRORS, **UNSUPPORTED},
    )
    def patch(self, request: Request, endpoint_id: str) -> Response:
        """Change url, events, description or enabled; enabling it again sends what it is owed."""
        endpoint = endpoint_for_owner(owner=request.user, endpoint_id=endpoint_id)
        data = _valid(EndpointUpdateSerializer, request.data)
        endpoint = endpoint_update(endpoint=endpoint, changes=data)
        return Response(EndpointSerializer(endpoint).data)

    @extend_schema(parameters=[ENDPOINT_ID], responses={204: None, **ERRORS})
    def delete(self, request: Request, endpoint_id: str) -> Response:
        """Delete the endpoint and its deliveries (nothing more is sent to it)."""
        endpoint = endpoint_for_owner(owner=request.user, endpoint_id=endpoint_id)
        endpoint.delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


class WebhookTestView(APIView):
    throttle_classes = [WebhookRateThrottle]

    @extend_schema(
        request=None,
        parameters=[ENDPOINT_ID, RETRY_AFTER],
        responses={202: DeliveryEnvelopeSerializer, 409: ERRORS[400], **ERRORS, **THROTTLED},
    )
    def post(self, request: Request, endpoint_id: str) -> Response:
        """Send a `ping` event to the endpoint now (409 while it is disabled)."""
        endpoint = endpoint_for_owner(owner=request.user, endpoint_id=endpoint_id)
        if not endpoint.enabled:
            return Response(
                {"error": "The endpoint is disabled; enable it first."},
                status=status.HTTP_409_CONFLICT,
            )
        delivery = endpoint_ping(endpoint=endpoint)
        return Response(
            DeliveryEnvelopeSerializer({"delivery": delivery}).data,
            status=status.HTTP_202_ACCEPTED,
        )


class WebhookRotateSecretView(APIView):
    throttle_classes = [WebhookRateThrottle]

    @extend_schema(
        request=None,
        parameters=[ENDPOINT_ID, RETRY_AFTER],
        responses={200: EndpointWithSecretSerializer, **ERRORS, **THROTTLED},
    )
    def post(self, request: Request, endpoint_id: str) -> Response:
        """A new signing secret (shown this once); the old one keeps signing beside it for
        24 hours (`previousSecretExpiresAt`)."""
        endpoint = endpoint_for_owner(owner=request.user, endpoint_id=endpoint_id)
        endpoint = endpoint_rotate_secret(endpoint=endpoint)
        return Response(EndpointWithSecretSerializer(endpoint).data)


def _valid(serializer_class: type, data: Any) -> dict[str, Any]:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)
