"""Project-level API views (staff)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from operations.queues import queue_stats
from photos.api.serializers import ErrorSerializer


class QueueSerializer(serializers.Serializer[Any]):
    name = serializers.CharField()
    waiting = serializers.IntegerField(help_text="Messages ready in Redis, not yet taken.")
    delayed = serializers.IntegerField(help_text="Messages scheduled for later (retries).")
    active = serializers.IntegerField(help_text="Messages held by workers (running or prefetched).")
    completed = serializers.IntegerField()
    failed = serializers.IntegerField()
    dead = serializers.IntegerField(help_text="Dead-lettered messages kept by the broker.")
    total = serializers.IntegerField()


class QueuesResponseSerializer(serializers.Serializer[Any]):
    queues = QueueSerializer(many=True)


class QueuesView(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(
        responses={200: QueuesResponseSerializer, 401: ErrorSerializer, 403: ErrorSerializer}
    )
    def get(self, request: Request) -> Response:
        """Staff only: per-queue figures from Redis and the database (docs/operations.md)."""
        return Response({"queues": queue_stats()})
